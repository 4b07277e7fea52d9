"""Credit-reference providers: an external LLM turns a sibling group into stepwise credit.

Given a group's successful and failed trajectories, a provider returns a training-only reference

    {"summary": str, "steps": [{"trajectory": int, "turn": int, "credit": float in [-1, 1], "why": str}]}

where a step is one assistant turn (turn = 0-based index of the trajectory's agent turns).

Providers (`provider` key):
  openai       any OpenAI-compatible chat endpoint via the `openai` package; SGCD_CREDIT_BASE_URL,
               SGCD_CREDIT_API_KEY, SGCD_CREDIT_MODEL (the key is never logged or written)
  local/PATH   a local Hugging Face model (local/smollm2 for the embedded default)
  guided/PATH  a local model filling the reference's fixed JSON skeleton (summary decoded, each
               turn's credit chosen by likelihood among -1, -0.5, 0, 0.5, 1): always parses
  zero         no reference: the teacher prompt is byte-identical to the student's
  random       the base provider's reference (`random_base`) with credits shuffled across the
               steps of each trajectory (a control: same words, credit assignment destroyed)
  oracle       no LLM: credit built from the benchmark's own ground truth (toy: the scripted
               solution; τ³-airline: the gold actions; harness/*/oracle.py), right by
               construction: the upper-bound control. A benchmark without per-step ground truth
               (AppWorld) is refused with a clear error when the run starts.

An answer that does not parse is retried once, then recorded and treated as `zero` for that
group; a provider error is handled the same way. Nothing here raises into the trainer.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.jsonl import JsonlError, read_jsonl
from harness.records import Message

SCHEMA_HINT = (
    '{"summary": "<what separates success from failure>", "steps": [{"trajectory": <int>, '
    '"turn": <int>, "credit": <number in [-1, 1]>, "why": "<short reason>"}]}'
)

INSTRUCTIONS = (
    "You are a credit assigner for training an agent. Below are several attempts (trajectories) at "
    "the same task; some succeeded and some failed. Compare them. For each assistant turn that "
    "mattered, give a credit in [-1, 1]: positive when the turn moved its attempt toward success, "
    "negative when it caused or revealed the failure. Turns are numbered from 0 within each "
    "trajectory. Answer with one JSON object only, no prose, in this shape:\n" + SCHEMA_HINT
)


@dataclass
class CreditReference:
    summary: str
    steps: list[dict[str, Any]]

    def for_trajectory(self, traj: int) -> list[dict[str, Any]]:
        return sorted((s for s in self.steps if s["trajectory"] == traj), key=lambda s: s["turn"])

    def to_dict(self) -> dict[str, Any]:
        return {"summary": self.summary, "steps": self.steps}


@dataclass
class SiblingGroup:
    """The group itself, for providers that read trajectories rather than the rendered prompt
    (the oracle): each trajectory's messages and the index of each agent turn in them."""

    task_id: str
    trajectories: list[tuple[list[Message], list[int]]]
    successes: list[bool]


@dataclass
class ProviderAnswer:
    """What a provider produced for one group: a reference, or None (zero) with the reason."""

    reference: CreditReference | None
    provider: str
    attempts: int = 0
    error: str | None = None
    raw: list[str] = field(default_factory=list)
    cached: bool = False


class CreditParseError(ValueError):
    pass


def parse_reference(text: str, n_trajectories: int, turns_per_traj: list[int]) -> CreditReference:
    """Parse and validate a provider's answer; raises CreditParseError with the reason."""
    m = re.search(r"\{.*\}", text, re.DOTALL)
    if not m:
        raise CreditParseError("no JSON object in the answer")
    try:
        obj = json.loads(m.group(0))
    except json.JSONDecodeError as e:
        raise CreditParseError(f"invalid JSON: {e}") from e
    if not isinstance(obj, dict) or not isinstance(obj.get("steps"), list):
        raise CreditParseError("the object needs a 'steps' list")
    steps = []
    for s in obj["steps"]:
        if not isinstance(s, dict):
            raise CreditParseError("a step must be an object")
        try:
            traj, turn, credit = int(s["trajectory"]), int(s["turn"]), float(s["credit"])
        except (KeyError, TypeError, ValueError) as e:
            raise CreditParseError(f"a step needs integer trajectory and turn and a numeric credit: {s!r}") from e
        if not (0 <= traj < n_trajectories and 0 <= turn < turns_per_traj[traj]):
            raise CreditParseError(f"step points at no assistant turn: trajectory {traj}, turn {turn}")
        if not -1.0 <= credit <= 1.0:
            raise CreditParseError(f"credit {credit} outside [-1, 1]")
        steps.append({"trajectory": traj, "turn": turn, "credit": credit, "why": str(s.get("why", ""))[:500]})
    return CreditReference(summary=str(obj.get("summary", ""))[:2000], steps=steps)


def render_group(task_text: str, trajectories: list[tuple[list[Message], list[int], bool, str]]) -> str:
    """The group as the provider sees it: the task, then each trajectory's turns, outcome and
    feedback. trajectories: (messages, index of each agent turn in messages, success, feedback)."""
    out = [INSTRUCTIONS, "", "# Task", task_text.strip(), ""]
    for i, (messages, turn_index, success, feedback) in enumerate(trajectories):
        out.append(f"# Trajectory {i} ({'SUCCESS' if success else 'FAILURE'})")
        turn_of = {m_idx: t for t, m_idx in enumerate(turn_index)}
        for j, m in enumerate(messages):
            if m.role == "assistant":
                calls = "; ".join(
                    f"{c.name}({json.dumps(c.arguments) if c.arguments is not None else c.raw_arguments})"
                    for c in m.tool_calls
                )
                label = f"[turn {turn_of[j]}] assistant" if j in turn_of else "assistant (opening line)"
                out.append(f"{label}: {(m.content or '').strip()} {('CALLS ' + calls) if calls else ''}".rstrip())
            elif m.role == "tool":
                out.append(f"  tool result: {(m.content or '')[:300]}")
            elif m.role == "user":
                out.append(f"  user: {(m.content or '')[:300]}")
        out.append(f"Outcome feedback: {feedback}")
        out.append("")
    return "\n".join(out)


def render_reference(ref: CreditReference | None, traj: int) -> str:
    """The text the teacher sees, placed after the system prompt (see method.teacher_system)."""
    if ref is None:
        return ""
    lines = ["# Credit reference (training only)", f"Summary: {ref.summary}"]
    for s in ref.for_trajectory(traj):
        why = f" — {s['why']}" if s["why"] else ""
        lines.append(f"- turn {s['turn']}: credit {s['credit']:+.2f}{why}")
    return "\n".join(lines)


class Provider:
    name = "base"
    uses_ground_truth = False  # True: the answer depends on the task's hidden truth, not only the prompt

    def complete(self, prompt: str) -> str:
        raise NotImplementedError

    def reference(self, prompt: str, n_traj: int, turns: list[int], retries: int = 1,
                  group: SiblingGroup | None = None) -> ProviderAnswer:  # fmt: skip
        ans = ProviderAnswer(None, self.name)
        for _ in range(retries + 1):
            ans.attempts += 1
            try:
                text = self.complete(prompt)
            except Exception as e:  # a provider outage must not stop training
                ans.error = f"provider error: {type(e).__name__}: {e}"
                continue
            ans.raw.append(text)
            try:
                ans.reference = parse_reference(text, n_traj, turns)
                ans.error = None
                return ans
            except CreditParseError as e:
                ans.error = f"unparsable answer: {e}"
        return ans


class ZeroProvider(Provider):
    name = "zero"

    def reference(self, prompt: str, n_traj: int, turns: list[int], retries: int = 1,
                  group: SiblingGroup | None = None) -> ProviderAnswer:  # fmt: skip
        return ProviderAnswer(None, self.name)


class OpenAIProvider(Provider):
    """Any OpenAI-compatible chat endpoint; configuration from the environment only."""

    name = "openai"

    def __init__(self, model: str | None = None, timeout_s: float = 120.0):
        base_url = os.environ.get("SGCD_CREDIT_BASE_URL")
        model = model or os.environ.get("SGCD_CREDIT_MODEL")
        if not base_url or not model:
            raise ValueError("the openai credit provider needs SGCD_CREDIT_BASE_URL and SGCD_CREDIT_MODEL (and SGCD_CREDIT_API_KEY)")
        from openai import OpenAI

        self.model: str = model
        self._client = OpenAI(base_url=base_url, api_key=os.environ.get("SGCD_CREDIT_API_KEY") or "none", timeout=timeout_s)
        self.name = f"openai:{self.model}"

    def complete(self, prompt: str) -> str:
        resp = self._client.chat.completions.create(
            model=self.model, messages=[{"role": "user", "content": prompt}], temperature=0.0
        )
        return resp.choices[0].message.content or ""


class LocalProvider(Provider):
    """A local Hugging Face model answering greedily through the shared Policy."""

    def __init__(self, path: str, max_new_tokens: int = 384):
        from harness.providers import load_policy

        self.policy = load_policy(path)
        self.max_new_tokens = max_new_tokens
        self.name = f"local/{path}"

    def complete(self, prompt: str) -> str:
        out = self.policy.generate("", [], [Message(role="user", content=prompt)], temperature=0.0,
                                   max_new_tokens=self.max_new_tokens)  # fmt: skip
        return out.text


class GuidedLocalProvider(LocalProvider):
    """A local Hugging Face model filling the reference's JSON skeleton, so every answer parses.

    The skeleton is fixed by the group's shape (which trajectories, how many turns each), so only
    its free parts are left to the model, given the same instructions and group as any provider:
    the summary is decoded greedily (at most `max_new_tokens` tokens, up to its closing quote),
    and each turn's credit is the option among CREDIT_CHOICES the model finds most likely after
    the skeleton so far (one forward pass per turn over all options, on the cached prefix). No
    "why" is asked for. A grammar-constrained decoder (lm-format-enforcer, outlines) would decode
    every forced key token one at a time, about ten times the cost on a CPU, hence this by hand.
    For small models (the embedded SmolLM2-135M never writes the free-form JSON). The answer is
    deterministic and always parses, so `retries` does not apply."""

    CREDIT_CHOICES = ("-1", "-0.5", "0", "0.5", "1")

    def __init__(self, path: str, max_new_tokens: int = 384):
        super().__init__(path, max_new_tokens)
        self.name = f"guided/{path}"

    def _ids(self, prompt_ids: list[int], text: str) -> list[int]:
        return prompt_ids + self.policy.tokenizer.encode(text, add_special_tokens=False)

    def fill(self, prompt: str, turns: list[int]) -> str:
        policy = self.policy
        prompt_ids = policy.render("", [], [Message(role="user", content=prompt)])
        text = '{"summary": "'
        out = policy.generate_ids(self._ids(prompt_ids, text), temperature=0.0, max_new_tokens=self.max_new_tokens)
        summary = re.split(r'["\n]', out.text, maxsplit=1)[0].strip()
        text += json.dumps(summary)[1:] + ', "steps": ['
        first = True
        outcome = dict(re.findall(r"^# Trajectory (\d+) \((SUCCESS|FAILURE)\)$", prompt, re.MULTILINE))
        for traj, n_turns in enumerate(turns):
            for turn in range(n_turns):
                # the trajectory's outcome (render_group's header) restated next to each credit
                known = f'"outcome": "{outcome[str(traj)].lower()}", ' if str(traj) in outcome else ""
                text += ("" if first else ", ") + f'{{"trajectory": {traj}, {known}"turn": {turn}, "credit":'
                first = False
                base = self._ids(prompt_ids, text)
                options = []
                for c in self.CREDIT_CHOICES:  # the option's own tokens, as they tokenize in context
                    full = self._ids(prompt_ids, text + f" {c}}}")
                    options.append(full[len(base):] if full[: len(base)] == base else self._ids([], f" {c}}}"))
                scores = policy.score_continuations(base, options)
                best = max(range(len(scores)), key=scores.__getitem__)
                text += f" {self.CREDIT_CHOICES[best]}}}"
        return text + "]}"

    def reference(self, prompt: str, n_traj: int, turns: list[int], retries: int = 1,
                  group: SiblingGroup | None = None) -> ProviderAnswer:  # fmt: skip
        ans = ProviderAnswer(None, self.name, attempts=1)
        try:
            text = self.fill(prompt, turns)
            ans.raw.append(text)
            ans.reference = parse_reference(text, n_traj, turns)
        except Exception as e:  # recorded, never raised into the trainer
            ans.error = f"provider error: {type(e).__name__}: {e}"
        return ans


class RandomProvider(Provider):
    """The base provider's reference with credits shuffled across each trajectory's steps."""

    def __init__(self, base: Provider, seed: int = 0):
        self.base, self.rng = base, random.Random(seed)
        self.name = f"random({base.name})"
        self.uses_ground_truth = base.uses_ground_truth

    def reference(self, prompt: str, n_traj: int, turns: list[int], retries: int = 1,
                  group: SiblingGroup | None = None) -> ProviderAnswer:  # fmt: skip
        ans = self.base.reference(prompt, n_traj, turns, retries, group)
        ans.provider = self.name
        if ans.reference is not None:
            steps = [dict(s) for s in ans.reference.steps]
            for traj in range(n_traj):
                idx = [i for i, s in enumerate(steps) if s["trajectory"] == traj]
                credits = [steps[i]["credit"] for i in idx]
                self.rng.shuffle(credits)
                for i, c in zip(idx, credits, strict=True):
                    steps[i]["credit"] = c
            ans.reference = CreditReference(ans.reference.summary, steps)
        return ans


class OracleUnavailable(ValueError):
    """The benchmark has no per-step ground truth to build oracle credit from."""


class OracleProvider(Provider):
    """Credit right by construction, from the benchmark's own ground truth (no LLM): the
    benchmark's `oracle_credit(task_id, trajectories, successes)` where it declares one
    (`has_oracle`). Its answer is validated like any provider's."""

    name = "oracle"
    uses_ground_truth = True

    def __init__(self, bench: Any):
        if bench is None:
            raise OracleUnavailable("the oracle credit provider needs the benchmark the run trains on; none was given")
        if not bench.has_oracle:
            raise OracleUnavailable(
                f"oracle credit is unavailable for benchmark {bench.name!r}: its ground truth gives no per-step "
                "evidence to credit agent turns with (it declares no oracle credit, e.g. a test suite over the "
                "final state). `sgcd-bench benchmarks` lists the benchmarks that have it; for this benchmark use "
                "provider = 'openai', 'local/PATH' or 'guided/PATH'."
            )
        self.bench = bench

    def reference(self, prompt: str, n_traj: int, turns: list[int], retries: int = 1,
                  group: SiblingGroup | None = None) -> ProviderAnswer:  # fmt: skip
        ans = ProviderAnswer(None, self.name, attempts=1)
        if group is None:
            ans.error = "provider error: the oracle reads the group's trajectories, and none were given"
            return ans
        try:
            obj = self.bench.oracle_credit(group.task_id, group.trajectories, group.successes)
            text = json.dumps(obj)
            ans.raw.append(text)
            ans.reference = parse_reference(text, n_traj, turns)
        except Exception as e:  # recorded, never raised into the trainer
            ans.error = f"provider error: {type(e).__name__}: {e}"
        return ans


def make_provider(name: str, random_base: str = "zero", seed: int = 0, max_new_tokens: int = 384,
                  bench: Any = None) -> Provider:  # fmt: skip
    """A provider by name; `bench` (the benchmark trained on) is needed by `oracle` only."""
    if name == "zero":
        return ZeroProvider()
    if name == "oracle":
        return OracleProvider(bench)
    if name == "openai":
        return OpenAIProvider()
    if name.startswith("local/"):
        return LocalProvider(name[len("local/"):], max_new_tokens)
    if name.startswith("guided/"):
        return GuidedLocalProvider(name[len("guided/"):], max_new_tokens)
    if name == "random":
        return RandomProvider(make_provider(random_base, seed=seed, max_new_tokens=max_new_tokens, bench=bench), seed)
    raise ValueError(f"unknown credit provider {name!r} (openai | local/PATH | guided/PATH | zero | random | oracle)")


class ReferenceCache:
    """References by group content and provider, on disk: a resumed run does not pay twice. Each
    process appends to its own file (`path`) and reads every process's."""

    def __init__(self, path: Path):
        self.path = path
        self.entries: dict[str, dict[str, Any]] = {}
        # Every process's file in the folder (cache.jsonl, cache.rank-R.jsonl): a resumed launch
        # finds each reference whichever process asked for it.
        for f in sorted(path.parent.glob("cache*.jsonl")) if path.parent.is_dir() else []:
            for i, rec in enumerate(read_jsonl(f, repair=f == path), start=1):  # a torn last line: dropped, warned
                if not isinstance(rec.get("key"), str):
                    raise JsonlError(f"{f}: record {i} has no 'key'; remove the file to ask the provider again")
                self.entries[rec["key"]] = rec

    @staticmethod
    def key(provider: str, prompt: str) -> str:
        return hashlib.sha256(f"{provider}\n{prompt}".encode()).hexdigest()

    def get(self, key: str) -> dict[str, Any] | None:
        return self.entries.get(key)

    def put(self, key: str, record: dict[str, Any]) -> None:
        record = {"key": key, **record}
        self.entries[key] = record
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")


# Config-time check (SGCD.Config), before any model loads; keep in step with make_provider.
PROVIDER_FORMS = "openai | local/PATH | guided/PATH | zero | random | oracle"


def is_provider_name(name: str) -> bool:
    """Whether make_provider knows `name`."""
    return name in ("zero", "openai", "random", "oracle") or (
        name.startswith(("local/", "guided/")) and len(name.split("/", 1)[1]) > 0
    )
