"""Benchmarks: the base every benchmark implements, its declarations, and the registry.

A benchmark is one module: a `Benchmark` subclass decorated with `@register` in its own module.
The registry finds them by importing `harness.<package>.benchmark` for every subpackage of
`harness` that has one (τ³-airline, AppWorld, toy) and every module named by an entry point of
the group `sgcd_bench.benchmarks` (third-party benchmarks; `[project.entry-points.
"sgcd_bench.benchmarks"] NAME = "package.module"`). Everything else (the CLI, the generic inspect
`@task`, eval's results table and summary, the trainers' rollouts, the reports) reads what the
class declares and never a benchmark's name:

  name, protocol      the episode protocol every entry point uses unless overridden (EvalProtocol)
  components          the reward components that become results-table columns (Outcome.components)
  has_floor           null_success(task_id) says whether the do-nothing agent passes a task
  summary_metrics     extra metrics over a run's rows (AppWorld: TGC and SGC, mean ± SD over seeds)
  data                the dataset it needs (harness.data.Dataset; `sgcd-bench data pull NAME`)
  default_split       the split an entry point evaluates when none is given
  max_concurrent      episodes that may run at once (None: no limit; AppWorld: its servers)
  has_scripted        scripted_messages(task_id) gives the ideal conversation (SFT warm start)
  has_oracle          oracle_credit(...) gives credit from its ground truth (the `oracle` provider)
The constructor's keyword arguments are the benchmark's options (`-B KEY=VALUE`, `-T KEY=VALUE`).
Whether an episode blocks on I/O is the Episode's own declaration (records.Episode.blocking).
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import pkgutil
import types
import warnings
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from harness.records import Episode, Message

if TYPE_CHECKING:
    from harness.data import Dataset

LIMIT_KEYS = ("max_steps", "max_errors", "max_tokens")
ENTRY_POINT_GROUP = "sgcd_bench.benchmarks"
B = TypeVar("B", bound="type[Benchmark]")


@dataclass(frozen=True)
class EvalProtocol:
    """A benchmark's episode protocol: what every entry point (`sgcd-bench eval`, the `@task`, the
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


@dataclass(frozen=True)
class SummaryMetric:
    """One of a benchmark's own summary metrics over a run: mean and SD over eval seeds."""

    key: str  # column stem in the summary: KEY_mean, KEY_sd
    label: str  # what a person reads ("TGC")
    mean: float
    sd: float  # NaN with one seed


class Benchmark:
    """The base every benchmark implements; see the module docstring for the declarations."""

    name: ClassVar[str]
    protocol: ClassVar[EvalProtocol]
    components: ClassVar[tuple[str, ...]] = ()
    has_floor: ClassVar[bool] = False
    data: ClassVar[Dataset | None] = None
    default_split: ClassVar[str] = "test"
    has_scripted: ClassVar[bool] = False
    has_oracle: ClassVar[bool] = False
    max_concurrent: int | None = None

    @property
    def has_user(self) -> bool:
        return self.protocol.user

    def split_ids(self, split: str) -> list[str]:
        """The task ids of `split`; KeyError naming the known splits for an unknown one."""
        raise NotImplementedError(f"{type(self).__name__}.split_ids")

    def episode(self, task_id: str) -> Episode:
        """A fresh episode of `task_id`; KeyError for an unknown task id."""
        raise NotImplementedError(f"{type(self).__name__}.episode")

    def task_facts(self, task_id: str) -> dict[str, Any]:
        """Per-task columns for the results table (scenario_id, null_success, …)."""
        return {"scenario_id": "", "null_success": self.null_success(task_id)}

    def null_success(self, task_id: str) -> bool | None:
        """Does the do-nothing agent succeed on `task_id`? None for a benchmark without a floor."""
        return None

    def manifest(self) -> dict[str, Any]:
        """Data version facts for the run manifest (hashes, which tool descriptions)."""
        return {}

    @classmethod
    def summary_metrics(cls, rows: list[dict[str, Any]]) -> list[SummaryMetric]:
        """The benchmark's own metrics over a run's result rows (none by default). ValueError when
        they cannot be computed from these rows (the summary then says why)."""
        return []

    def scripted_messages(self, task_id: str) -> list[Message]:
        """The ideal conversation, opening messages included (when has_scripted)."""
        raise ValueError(f"benchmark {self.name!r} has no scripted solutions")

    def oracle_credit(self, task_id: str, trajectories: list[tuple[list[Message], list[int]]],
                      successes: list[bool]) -> dict[str, Any]:  # fmt: skip
        """Credit {"summary", "steps"} from the benchmark's ground truth (when has_oracle)."""
        raise ValueError(f"benchmark {self.name!r} has no ground truth to build oracle credit from")

    def close(self) -> None:
        """Release what the benchmark started (servers); nothing by default."""


_REGISTRY: dict[str, type[Benchmark]] = {}
_CACHE: dict[tuple[str, tuple[tuple[str, Any], ...]], Benchmark] = {}  # (name, sorted kwargs) -> instance
_discovered = False
_BROKEN: dict[str, str] = {}  # entry point name -> why it failed to load


def register(cls: B) -> B:
    """Class decorator: make `cls` a registered benchmark under `cls.name`."""
    missing = [a for a in ("name", "protocol") if not hasattr(cls, a)]
    if missing:
        raise TypeError(f"benchmark class {cls.__name__} declares no {' or '.join(missing)}")
    if not isinstance(cls.protocol, EvalProtocol):
        raise TypeError(f"{cls.__name__}.protocol must be an EvalProtocol(max_steps=..., max_errors=..., "
                        "max_tokens=..., user=...)")  # fmt: skip
    other = _REGISTRY.get(cls.name)
    if other is not None and (other.__module__, other.__qualname__) != (cls.__module__, cls.__qualname__):
        raise TypeError(f"two benchmarks named {cls.name!r}: {other.__module__}.{other.__qualname__} and "
                        f"{cls.__module__}.{cls.__qualname__}")  # fmt: skip
    _REGISTRY[cls.name] = cls
    return cls


def package_modules(leaf: str) -> list[types.ModuleType]:
    """`harness.<package>.<leaf>` imported for every subpackage of harness that has one (each
    benchmark package's `benchmark` module, its `cli` commands)."""
    import harness

    return [importlib.import_module(f"harness.{m.name}.{leaf}") for m in pkgutil.iter_modules(harness.__path__)
            if m.ispkg and importlib.util.find_spec(f"harness.{m.name}.{leaf}") is not None]  # fmt: skip


def discover() -> dict[str, type[Benchmark]]:
    """Every registered benchmark, by name: the `harness.*.benchmark` modules and the entry points.
    An entry point that fails to load is warned about and named when its benchmark is asked for;
    it never hides the others."""
    global _discovered
    if not _discovered:
        package_modules("benchmark")
        from importlib.metadata import entry_points

        for ep in entry_points(group=ENTRY_POINT_GROUP):
            try:
                ep.load()
            except Exception as e:  # a third party's bug: named, never fatal to the other benchmarks
                _BROKEN[ep.name] = (f"the benchmark entry point {ep.name} = {ep.value!r} ({ENTRY_POINT_GROUP}) "
                                    f"failed to load: {type(e).__name__}: {e}")  # fmt: skip
                warnings.warn(_BROKEN[ep.name], stacklevel=2)
        _discovered = True
    return dict(_REGISTRY)


def benchmark_class(name: str) -> type[Benchmark]:
    """The class registered as `name` (KeyError naming the known ones); no instance is built."""
    known = discover()
    if name in _BROKEN and name not in known:
        raise KeyError(_BROKEN[name])
    if name not in known:
        raise KeyError(f"unknown benchmark {name!r}; known: {', '.join(sorted(known))}")
    return known[name]


def benchmark_protocol(name: str) -> EvalProtocol:
    """Benchmark `name`'s own protocol, without building it."""
    return benchmark_class(name).protocol


def resolve_protocol(name: str, max_steps: int | None = None, max_errors: int | None = None,
                     max_tokens: int | None = None) -> ResolvedProtocol:  # fmt: skip
    """Benchmark `name`'s protocol with each limit that is given (not None) put in its place."""
    default = benchmark_protocol(name)
    given: dict[str, Any] = {k: v for k, v in zip(LIMIT_KEYS, (max_steps, max_errors, max_tokens), strict=True) if v is not None}
    used = replace(default, **given)
    overridden = tuple(k for k in LIMIT_KEYS if getattr(used, k) != getattr(default, k))
    return ResolvedProtocol(used, default, overridden)


def benchmark_params(name: str) -> list[str]:
    """The keyword arguments benchmark `name` takes (its -B / -T keys)."""
    params = inspect.signature(benchmark_class(name)).parameters.values()
    return [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def check_args(name: str, args: dict[str, Any], flag: str = "-B") -> None:
    """ValueError naming the unknown keys of `args` for benchmark `name`."""
    known = benchmark_params(name)
    unknown = sorted(set(args) - set(known))
    if unknown:
        raise ValueError(f"unknown {flag} key(s) for {name}: {', '.join(unknown)}; "
                         f"known: {', '.join(known) or 'none'}")  # fmt: skip


def get_benchmark(name: str, **kwargs: Any) -> Benchmark:
    """The benchmark `name` built with `kwargs` (one instance per name and arguments)."""
    cls = benchmark_class(name)
    key = (name, tuple(sorted(kwargs.items())))
    if key not in _CACHE:
        _CACHE[key] = cls(**kwargs)
    return _CACHE[key]
