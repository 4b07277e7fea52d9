"""The benchmark registry: name -> how to list a split's tasks and start an Episode for one.

Every benchmark (τ³-airline, AppWorld, toy) plugs in here with the same small interface, so the
inspect tasks, `sgcd-bench eval` and the trainers' rollouts share one path to the environments.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any, Protocol

from harness.records import Episode

LIMIT_KEYS = ("max_steps", "max_errors", "max_tokens")


@dataclass(frozen=True)
class EvalProtocol:
    """A benchmark's episode protocol: what every entry point (`sgcd-bench eval`, each `@task`, the
    experiment runner) uses unless a run overrides it explicitly.

    max_steps: messages per episode; max_errors: tool errors that end one; max_tokens: tokens per
    model reply (None: the provider's own limit); user: a simulated user takes part."""

    max_steps: int
    max_errors: int
    max_tokens: int | None
    user: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ResolvedProtocol:
    """The protocol a run uses: the benchmark's, with the explicit overrides applied and named."""

    protocol: EvalProtocol
    default: EvalProtocol
    overridden: tuple[str, ...]  # the LIMIT_KEYS whose value differs from the benchmark's

    def to_dict(self) -> dict[str, Any]:
        """The manifest's protocol block."""
        return {**self.protocol.to_dict(), "overridden": list(self.overridden), "default": self.default.to_dict()}

    def row_columns(self) -> dict[str, Any]:
        """The protocol columns of every result row."""
        p = self.protocol
        return {"max_steps": p.max_steps, "max_errors": p.max_errors, "max_tokens": p.max_tokens,
                "protocol_overrides": ",".join(self.overridden)}  # fmt: skip


class Benchmark(Protocol):
    name: str
    has_user: bool

    def split_ids(self, split: str) -> list[str]: ...

    def episode(self, task_id: str) -> Episode: ...

    def task_facts(self, task_id: str) -> dict[str, Any]:
        """Per-task columns for the results table (scenario_id, null_success, …)."""
        ...

    # Optional: oracle_credit(task_id, [(messages, agent turn indices)], successes) -> {"summary",
    # "steps"}: credit from the benchmark's own ground truth (the `oracle` credit provider). A
    # benchmark without per-step ground truth (AppWorld) leaves it out.

    def manifest(self) -> dict[str, Any]:
        """Data version facts for the run manifest (hashes, which tool descriptions)."""
        ...


class Tau3Airline:
    name = "tau3-airline"
    # upstream τ² (tau2-bench run defaults): 200 messages, 10 tool errors, the provider's reply limit
    protocol = EvalProtocol(max_steps=200, max_errors=10, max_tokens=None, user=True)
    has_user = protocol.user

    def __init__(self, opening_line: str | None = None, data_dir: str | None = None):
        from harness.airline.domain import OPENING_LINE, load_domain

        self.domain = load_domain(data_dir)
        self.opening_line = OPENING_LINE if opening_line is None else opening_line

    def split_ids(self, split: str) -> list[str]:
        return [t.id for t in self.domain.split(split)]

    def episode(self, task_id: str) -> Episode:
        from harness.airline.episode import AirlineEpisode

        return AirlineEpisode(self.domain, self.domain.task(task_id), self.opening_line)

    def task_facts(self, task_id: str) -> dict[str, Any]:
        from harness.airline.evaluator import gold_state
        from harness.floors import null_successes

        task = self.domain.task(task_id)
        return {
            "scenario_id": "",
            "null_success": null_successes(self.name, [task_id], self.domain.data_dir)[task_id],
            "write_required": bool(gold_state(self.domain, task).state.touched()),
        }

    def oracle_credit(self, task_id: str, trajectories: list[tuple[list[Any], list[int]]],
                      successes: list[bool]) -> dict[str, Any]:  # fmt: skip
        """Credit from the task's gold actions (harness/airline/oracle.py), for the `oracle` provider."""
        from harness.airline.oracle import oracle_credit

        return oracle_credit(self.domain, task_id, trajectories, successes)

    def manifest(self) -> dict[str, Any]:
        from harness.data import TAU3_AIRLINE

        return {"data_dir": str(self.domain.data_dir), "data_hashes": self.domain.file_hashes(),
                "data_version": f"{TAU3_AIRLINE.upstream_repo}@{TAU3_AIRLINE.upstream_commit}",
                "tool_descriptions": self.domain.tool_descriptions, "opening_line": self.opening_line}  # fmt: skip


def _toy(**kwargs: Any) -> Benchmark:
    from harness.toy.benchmark import Toy

    return Toy(**kwargs)


def _appworld(**kwargs: Any) -> Benchmark:
    from harness.appworld.benchmark import AppWorld

    return AppWorld(**kwargs)


_toy.target = "harness.toy.benchmark:Toy"  # type: ignore[attr-defined]
_appworld.target = "harness.appworld.benchmark:AppWorld"  # type: ignore[attr-defined]


_REGISTRY: dict[str, Callable[..., Benchmark]] = {"tau3-airline": Tau3Airline, "toy": _toy, "appworld": _appworld}
_CACHE: dict[tuple[str, tuple], Benchmark] = {}


def _factory(name: str) -> Any:
    """The class (or factory) registered as `name`, its lazy target imported; no instance built."""
    import importlib

    if name not in _REGISTRY:
        raise KeyError(f"unknown benchmark {name!r}; known: {', '.join(sorted(_REGISTRY))}")
    factory: Any = _REGISTRY[name]
    if target := getattr(factory, "target", None):
        module, attr = target.split(":")
        factory = getattr(importlib.import_module(module), attr)
    return factory


def benchmark_protocol(name: str) -> EvalProtocol:
    """Benchmark `name`'s own protocol (its class attribute `protocol`), without building it."""
    registered = _REGISTRY.get(name)
    proto = getattr(registered, "protocol", None) or getattr(_factory(name), "protocol", None)
    if not isinstance(proto, EvalProtocol):
        raise KeyError(f"benchmark {name!r} declares no protocol; give its class a "
                       "`protocol = EvalProtocol(max_steps=..., max_errors=..., max_tokens=..., user=...)`")  # fmt: skip
    return proto


def resolve_protocol(name: str, max_steps: int | None = None, max_errors: int | None = None,
                     max_tokens: int | None = None) -> ResolvedProtocol:  # fmt: skip
    """Benchmark `name`'s protocol with each limit that is given (not None) put in its place."""
    default = benchmark_protocol(name)
    given = {k: v for k, v in zip(LIMIT_KEYS, (max_steps, max_errors, max_tokens), strict=True) if v is not None}
    used = replace(default, **given)
    overridden = tuple(k for k in LIMIT_KEYS if getattr(used, k) != getattr(default, k))
    return ResolvedProtocol(used, default, overridden)


def benchmark_params(name: str) -> list[str] | None:
    """The keyword arguments benchmark `name` takes (its -B keys); None if it takes any."""
    import inspect

    factory = _factory(name)
    params = inspect.signature(factory).parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return None
    return [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def get_benchmark(name: str, **kwargs: Any) -> Benchmark:
    if name not in _REGISTRY:
        raise KeyError(f"unknown benchmark {name!r}; known: {', '.join(sorted(_REGISTRY))}")
    key = (name, tuple(sorted(kwargs.items())))
    if key not in _CACHE:
        _CACHE[key] = _REGISTRY[name](**kwargs)
    return _CACHE[key]
