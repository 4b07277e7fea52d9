"""The algorithm contract: the hooks the trainer calls, how algorithms are found, and how a loss's
terms are weighted. The trainer (sgcd/trainer.py) calls only these hooks, so it knows no
algorithm by name; each algorithm's math lives in its own one file.

Adding an algorithm is one module:
  - in this project: a module in baselines/ (every module of the package is imported on lookup);
  - in another package: a module named by an entry point of the group `sgcd_bench.algorithms`,
        [project.entry-points."sgcd_bench.algorithms"]
        myalgo = "mypackage.myalgo"
    (name the entry point as the algorithm: a broken one is named when that algorithm is asked
    for). SGCD itself (sgcd/method.py) is plugged in this way, from this project's pyproject.toml.
A subclass of `Algorithm` that sets `name` registers itself when its module is imported; it is
then found by `get_algorithm(name)` and by `--algo NAME`. Modules are imported only on a lookup.

The hooks, in the order one update calls them (B rows of length L, T trajectories):
  name, Config        the --algo name; the dataclass of its `[algo]` table (keys and defaults)
  budget_key          the TrainConfig key that sizes one update; it must divide over the processes
                      of a launch ("groups_per_update": rollouts' sibling groups)
  collect(source, step) -> (batch | None, collected | None)
                      where the update's rows come from. `source` is the trainer: by default its
                      rollouts, `source.rollout_batch(step)` (collected: the groups sampled, kept
                      and dropped, reported in the step's row); SFT draws scripted conversations
                      (collected None). None for the batch: nothing to learn from this step.
  prepare(batch, old_logp) -> (work, metrics)
                      detached work before the update (a teacher pass, credit); old_logp (B, L) is
                      log π_old, the weights the update starts from. `work` is handed as it is to
                      the hooks below (None: nothing to hand on).
  token_advantages(batch, traj_adv, work) -> (adv_tok, audit)
                      (T,) trajectory advantages -> (B, L) token advantages; `audit` is this
                      process's part of the step's audit, or None
  write_audit(audits, main) -> metrics
                      every process's `audit`, in rank order; the main process writes the step's
                      one audit file. The metrics are the same on every process.
  loss(batch, logp, old_logp, ref_logp, adv_tok, rows, logits, work) -> (terms, metrics)
                      on micro-batch `rows` (the (B, L) tensors are those rows'; `logits` (N, V)
                      the student's forward at the N policy tokens of those rows, row-major). The
                      loss is a list of `Term`s, each declaring what it is a mean over; the trainer
                      weights them once (`weigh`), so no algorithm scales by the micro-batch.
                      `metrics` are micro-batch means (the trainer weights them by the
                      micro-batch's share under loss_agg).
Nothing of one update is kept on the algorithm between hooks: what a hook needs from an earlier
one comes as an argument. State that lives across updates (a credit cache, an EMA teacher) may.
"""

from __future__ import annotations

import importlib
import pkgutil
import types
import warnings
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from sgcd.losses import PGConfig
from sgcd.tokens import TokenBatch

ENTRY_POINT_GROUP = "sgcd_bench.algorithms"
BUILTIN_PACKAGE = "baselines"  # every module of this package is an algorithm module

_REGISTRY: dict[str, type[Algorithm]] = {}


def _discover() -> dict[str, tuple[str, BaseException]]:
    """Import every module of the baselines package (an error there is a bug: it is raised) and
    load every entry point of the group. -> the entry points that failed: name -> (what it names,
    the error)."""
    from importlib.metadata import entry_points

    package = importlib.import_module(BUILTIN_PACKAGE)
    for mod in pkgutil.iter_modules(package.__path__, f"{BUILTIN_PACKAGE}."):
        if not mod.name.rpartition(".")[2].startswith("_"):
            importlib.import_module(mod.name)
    broken: dict[str, tuple[str, BaseException]] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            obj = ep.load()
            if not (isinstance(obj, types.ModuleType) or (isinstance(obj, type) and issubclass(obj, Algorithm))):
                raise TypeError(f"it names a {type(obj).__name__}, not a module or an Algorithm subclass")
        except Exception as e:  # a third party's bug: named below, never hiding the other algorithms
            broken[ep.name] = (ep.value, e)
    return broken


def _describe(name: str, value: str, error: BaseException) -> str:
    return (f"entry point {name!r} = {value!r} (group {ENTRY_POINT_GROUP}) failed to load: "
            f"{type(error).__name__}: {error}")  # fmt: skip


def get_algorithm(name: str) -> type[Algorithm]:
    """The algorithm class called `name`, found in baselines/ or through an entry point. Raises
    KeyError "unknown algorithm ..." listing the known ones (and any entry point that failed)."""
    broken = _discover()
    if name in _REGISTRY:
        for ep, (value, err) in broken.items():
            warnings.warn(_describe(ep, value, err), stacklevel=2)
        return _REGISTRY[name]
    if name in broken:
        value, err = broken[name]
        raise KeyError(f"algorithm {name!r}: {_describe(name, value, err)}") from err
    msg = f"unknown algorithm {name!r}; known: {', '.join(sorted(_REGISTRY))}"
    if broken:
        msg += "; " + "; ".join(_describe(ep, value, err) for ep, (value, err) in sorted(broken.items()))
    raise KeyError(msg)


@dataclass
class AlgoContext:
    """What an algorithm may use besides tensors: the policy, its settings, the run folder and
    the benchmark trained on (for credit built from its ground truth)."""

    policy: Any
    run_dir: Any
    pg: PGConfig
    step: int = 0
    bench: Any = None
    dist: Any = None  # sgcd/distributed.py Dist: this process's place in a launch (None: alone)


@dataclass
class Term:
    """One part of an update's loss, computed on a micro-batch, with what it is a mean over:
      `over` an aggregation ("token-mean" | "seq-mean-token-mean"): `value` is the micro-batch's
          mean by that rule; the trainer weights it by the micro-batch's share of the update's
          policy tokens | rows with any (every process's) — the shares of an update sum to 1;
      `over` a number N: `value` is the micro-batch's sum of something whose update-wide mean
          is (sum over every micro-batch of every process) / N; the trainer divides it by N.
    The loss is Σ coef · (weighted value); `metric` names the weighted value's sum over the
    update in the step's row (None: not reported on its own)."""

    value: torch.Tensor
    over: str | float
    coef: float = 1.0
    metric: str | None = None


def weigh(terms: list[Term], batch: TokenBatch, rows: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
    """The trainer's one weighting of a micro-batch's loss terms -> (the micro-batch's part of the
    update's loss, each named term's part of its metric). Summed over every micro-batch (and
    process) they are the update's loss and metrics. A batch that does not count (a replica)
    weighs 0, keeping the graph."""
    total: torch.Tensor | None = None
    metrics: dict[str, float] = {}
    for t in terms:
        if not batch.counts:
            w = 0.0
        else:
            w = batch.share(rows, t.over) if isinstance(t.over, str) else 1.0 / t.over
        part = w * t.value
        if t.metric is not None:
            metrics[t.metric] = float(part.detach())
        if t.coef != 0:
            total = part * t.coef if total is None else total + part * t.coef
    if total is None:
        raise ValueError("a loss needs a term with a non-zero coef")
    return total, metrics


class Algorithm:
    """The base of every algorithm: the hooks' defaults. `loss` has none."""

    name: ClassVar[str] = ""
    budget_key: ClassVar[str] = "groups_per_update"
    Config: ClassVar[type] = dataclass(type("NoConfig", (), {}))

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """A subclass that sets its own `name` is an algorithm: registered under it."""
        super().__init_subclass__(**kwargs)
        if "name" not in cls.__dict__:
            return
        old = _REGISTRY.get(cls.name)
        if old is not None and (old.__module__, old.__qualname__) != (cls.__module__, cls.__qualname__):
            raise TypeError(f"algorithm name {cls.name!r} of {cls.__module__}.{cls.__qualname__} is taken by "
                            f"{old.__module__}.{old.__qualname__}")  # fmt: skip
        _REGISTRY[cls.name] = cls

    def __init__(self, cfg: Any, ctx: AlgoContext):
        self.cfg, self.ctx = cfg, ctx

    def collect(self, source: Any, step: int) -> tuple[TokenBatch | None, Any]:
        """The update's rows: the trainer's rollouts (sibling groups from the policy)."""
        return source.rollout_batch(step)

    def prepare(self, batch: TokenBatch, old_logp: torch.Tensor) -> tuple[Any, dict[str, float]]:
        """Nothing to do before the update."""
        return None, {}

    def token_advantages(self, batch: TokenBatch, traj_adv: torch.Tensor,
                         work: Any = None) -> tuple[torch.Tensor, Any]:  # fmt: skip
        """Each trajectory's advantage on each of its rows' policy tokens: (T,) -> (B, L); no audit."""
        return traj_adv[batch.row_traj][:, None] * batch.loss_mask, None

    def write_audit(self, audits: list[Any], main: bool) -> dict[str, float]:
        """No audit file."""
        return {}

    def loss(
        self,
        batch: TokenBatch,
        logp: torch.Tensor,
        old_logp: torch.Tensor,
        ref_logp: torch.Tensor | None,
        adv_tok: torch.Tensor,
        rows: torch.Tensor,
        logits: torch.Tensor | None = None,
        work: Any = None,
    ) -> tuple[list[Term], dict[str, float]]:
        raise NotImplementedError(f"{type(self).__name__} ({self.name!r}) defines no loss: every algorithm "
                                  "returns its own terms (GRPO's clipped loss: baselines/grpo.py)")  # fmt: skip
