"""The τ³-airline domain as data: tasks, splits, policy, tool schemas, and the prompts built from them.

`load_domain()` reads the verified data directory once per process. Prompts follow upstream
tau2-bench: the agent's system prompt wraps the policy; the user simulator's wraps the
simulation guidelines and the task's scenario.
"""

from __future__ import annotations

import json
import textwrap
import threading
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from harness.airline.db import AirlineDB, load_db
from harness.airline.schemas import in_official_order, project_tool_schemas
from harness.data import DataError, dataset_dir, require_dataset, sha256_file

DATASET = "tau3-airline"
SPLITS = ("train", "test", "base")
USER_STOP_TOKENS = ("###STOP###", "###TRANSFER###", "###OUT-OF-SCOPE###")
OPENING_LINE = "Hi! How can I help you today?"

AGENT_INSTRUCTION = (
    "You are a customer service agent that helps the user according to the <policy> provided below.\n"
    "In each turn you can either:\n"
    "- Send a message to the user.\n"
    "- Make a tool call.\n"
    "You cannot do both at the same time.\n\n"
    "Try to be helpful and always follow the policy. Always make sure you generate valid JSON only."
)


@dataclass(frozen=True)
class GoldAction:
    name: str
    arguments: dict[str, Any]
    action_id: str = ""


@dataclass(frozen=True)
class AirlineTask:
    id: str
    user_scenario: dict[str, Any]
    actions: tuple[GoldAction, ...]
    communicate_info: tuple[str, ...]
    reward_basis: tuple[str, ...]
    nl_assertions: tuple[str, ...] = field(default=())
    purpose: str = ""

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> AirlineTask:
        crit = raw.get("evaluation_criteria") or {}
        basis = tuple(crit.get("reward_basis") or ("DB", "COMMUNICATE"))
        unsupported = set(basis) - {"DB", "COMMUNICATE"}
        if unsupported:
            raise DataError(f"task {raw.get('id')}: reward basis {sorted(unsupported)} is not supported")
        return cls(
            id=str(raw["id"]),
            user_scenario=raw.get("user_scenario") or {},
            actions=tuple(
                GoldAction(a["name"], a.get("arguments") or {}, a.get("action_id", ""))
                for a in crit.get("actions") or ()
            ),
            communicate_info=tuple(crit.get("communicate_info") or ()),
            reward_basis=basis,
            nl_assertions=tuple(crit.get("nl_assertions") or ()),
            purpose=((raw.get("description") or {}).get("purpose") or ""),
        )

    def scenario_text(self) -> str:
        """The user scenario as upstream renders it for the user simulator."""
        sc = self.user_scenario
        lines: list[str] = []
        if sc.get("persona"):
            lines += ["Persona:", textwrap.indent(sc["persona"], "\t")]
        ins = sc.get("instructions")
        if isinstance(ins, dict):
            parts = [f"Domain: {ins.get('domain')}", "Reason for call:", textwrap.indent(ins.get("reason_for_call") or "", "\t")]
            if ins.get("known_info") is not None:
                parts += ["Known info:", textwrap.indent(ins["known_info"], "\t")]
            if ins.get("unknown_info") is not None:
                parts += ["Unknown info:", textwrap.indent(ins["unknown_info"], "\t")]
            parts += ["Task instructions:", textwrap.indent(ins.get("task_instructions") or "", "\t")]
            ins_text = "\n".join(parts)
        else:
            ins_text = str(ins or "")
        lines += ["Instructions:", textwrap.indent(ins_text, "\t")]
        return "\n".join(lines)


class AirlineDomain:
    """Everything read from the data directory, loaded lazily and once."""

    def __init__(self, data_dir: Path):
        self.data_dir = Path(data_dir)

    def _read(self, name: str) -> str:
        path = self.data_dir / name
        try:
            return path.read_text(encoding="utf-8")
        except OSError as e:
            raise DataError(f"{DATASET}: cannot read {path}: {e}; run `sgcd-bench data pull {DATASET}`") from e

    def _json(self, name: str) -> Any:
        try:
            return json.loads(self._read(name))
        except json.JSONDecodeError as e:
            raise DataError(f"{DATASET}: {self.data_dir / name} is not valid JSON ({e}); run `sgcd-bench data pull {DATASET}`") from e

    @property
    def db(self) -> AirlineDB:
        return load_db(self.data_dir / "db.json")

    @cached_property
    def tasks(self) -> dict[str, AirlineTask]:
        return {t.id: t for t in (AirlineTask.from_json(raw) for raw in self._json("tasks.json"))}

    @cached_property
    def splits(self) -> dict[str, list[str]]:
        return {k: [str(i) for i in v] for k, v in self._json("split_tasks.json").items()}

    @cached_property
    def policy(self) -> str:
        return self._read("policy.md")

    @cached_property
    def user_guidelines(self) -> str:
        return self._read("simulation_guidelines.md")

    @cached_property
    def tool_descriptions(self) -> str:
        """`official` when tools.json supplies the schemas, else `project`."""
        return "official" if (self.data_dir / "tools.json").is_file() else "project"

    @cached_property
    def tool_schemas(self) -> list[dict[str, Any]]:
        """The 14 schemas in the official tool order (tools.json itself is sorted by name)."""
        if self.tool_descriptions == "official":
            return in_official_order(self._json("tools.json"))
        return in_official_order(project_tool_schemas())

    def task(self, task_id: str) -> AirlineTask:
        try:
            return self.tasks[str(task_id)]
        except KeyError:
            raise KeyError(f"unknown τ³-airline task id {task_id!r} (ids are '0'..'{len(self.tasks) - 1}')") from None

    def split(self, name: str) -> list[AirlineTask]:
        if name not in self.splits:
            raise ValueError(f"unknown τ³-airline split {name!r}; choose one of {', '.join(self.splits)}")
        return [self.task(i) for i in self.splits[name]]

    def agent_system_prompt(self) -> str:
        return f"<instructions>\n{AGENT_INSTRUCTION}\n</instructions>\n<policy>\n{self.policy}\n</policy>"

    def user_system_prompt(self, task: AirlineTask) -> str:
        return f"{self.user_guidelines}\n\n<scenario>\n{task.scenario_text()}\n</scenario>"

    def file_hashes(self) -> dict[str, str]:
        return {p.name: sha256_file(p) for p in sorted(self.data_dir.iterdir()) if p.is_file()}


_DOMAINS: dict[Path, AirlineDomain] = {}
_LOCK = threading.Lock()


def load_domain(data_dir: Path | None = None) -> AirlineDomain:
    """The domain for a data directory (default: the verified pulled copy), once per process."""
    explicit = data_dir is not None
    data_dir = Path(data_dir if explicit else dataset_dir(DATASET)).resolve()
    with _LOCK:
        if data_dir not in _DOMAINS:
            require_dataset(DATASET, data_dir)  # hashes checked once per process, --data-dir included
            _DOMAINS[data_dir] = AirlineDomain(data_dir)
        return _DOMAINS[data_dir]
