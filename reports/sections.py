"""Report sections researchers ask for: provenance, flip rate, tokens and cost, where tasks fail.

Computed from each run's tidy rows and manifest (never from a summary), rendered as markdown:
  provenance   benchmark data version, user model and temperature, generation backend and
               dtype, project version and git commit (harness/provenance.py reads the manifest)
  flip rate    share of tasks whose success differs between eval seeds; per paired comparison,
               the share of (task, seed) verdicts that differ between the two runs, averaged per
               task; bootstrap CIs over tasks (harness/metrics.py)
  usage        agent and user input/output tokens and seconds per episode (mean, p95) and in
               total; with a prices file, cost per episode, in total and per success
  failures     per task: successes over seeds, end reasons, the reward components that failed
A row whose token counts were not recorded makes the run's usage "n/a", never zero.
"""

from __future__ import annotations

import math
import tomllib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from harness.metrics import Rate, flip_rate, verdict_flip_rate
from harness.records import is_success
from reports.tidy import Run, TidyError, drop_infra

TOKEN_COLUMNS = {"agent input": "input_tokens", "agent output": "output_tokens",
                 "user input": "user_input_tokens", "user output": "user_output_tokens"}  # fmt: skip


# ---------------------------------------------------------------- prices


@dataclass(frozen=True)
class Price:
    """USD per million tokens."""

    input: float
    output: float


def load_prices(path: Path) -> dict[str, Price]:
    """A TOML file of per-million-token prices by model name:

        ["openai-api/together/Qwen/Qwen3-8B"]
        input = 0.18     # USD per million input tokens
        output = 0.18    # USD per million output tokens

    A model matches by its full name as the run records it, else by its last path part."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise TidyError(f"could not read prices from {path}: {e}") from e
    out = {}
    for name, entry in raw.items():
        if not isinstance(entry, dict):
            raise TidyError(f'{path}: [{name!r}] must be a table with input and output prices, e.g. ["{name}"] '
                            "input = 0.5 output = 1.5 (USD per million tokens)")  # fmt: skip
        missing = [k for k in ("input", "output") if k not in entry]
        if missing:
            raise TidyError(f"{path}: [{name!r}] lacks {', '.join(missing)} (USD per million tokens)")
        vals = {}
        for k in ("input", "output"):
            v = entry[k]
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v < 0:
                raise TidyError(f"{path}: [{name!r}].{k} must be a non-negative number of USD per million tokens; got {v!r}")
            vals[k] = float(v)
        unknown = sorted(set(entry) - {"input", "output"})
        if unknown:
            raise TidyError(f"{path}: [{name!r}] has unknown key(s) {', '.join(unknown)}; only input and output")
        out[str(name)] = Price(vals["input"], vals["output"])
    if not out:
        raise TidyError(f"{path}: no prices; expected tables like [\"MODEL\"] input = … output = …")
    return out


def price_for(model: str, prices: dict[str, Price]) -> Price | None:
    if model in prices:
        return prices[model]
    return prices.get(model.rstrip("/").rsplit("/", 1)[-1])


# ---------------------------------------------------------------- usage and cost


@dataclass
class Usage:
    """Per-episode token and time figures of one run; None where not recorded."""

    episodes: int
    per_episode: dict[str, tuple[float, float] | None]  # label -> (mean, p95)
    totals: dict[str, float | None]
    seconds: tuple[float, float] | None
    has_user: bool
    cost: float | None = None  # USD, whole run
    cost_per_success: float | None = None
    successes: int = 0
    notes: list[str] = field(default_factory=list)


def _recorded(df: pd.DataFrame, col: str) -> pd.Series | None:
    """The column as floats, or None when some row did not record it (missing, NaN, or zero
    tokens on an episode that took turns: a provider that reported no usage)."""
    if col not in df.columns:
        return None
    v = pd.to_numeric(df[col], errors="coerce")
    if v.isna().any():
        return None
    if col in ("input_tokens", "output_tokens") and "turns" in df.columns:
        turns = pd.to_numeric(df["turns"], errors="coerce").fillna(0)
        if ((v == 0) & (turns > 0)).any():
            return None
    return v.astype(float)


def usage(run: Run, prices: dict[str, Price] | None = None, prices_path: Path | None = None) -> Usage:
    df = run.df
    user_model = run.label("user_model")
    has_user = user_model not in (None, "none")
    per, totals = {}, {}
    for label, col in TOKEN_COLUMNS.items():
        if label.startswith("user") and not has_user:
            continue
        v = _recorded(df, col)
        if v is not None and label.startswith("user") and "turns" in df.columns and (v == 0).all():
            v = None  # a run written before user tokens were recorded
        per[label] = (float(v.mean()), float(np.percentile(v, 95))) if v is not None else None
        totals[label] = float(v.sum()) if v is not None else None
    sec = _recorded(df, "seconds")
    ok, _ = drop_infra(df)
    out = Usage(len(df), per, totals, (float(sec.mean()), float(np.percentile(sec, 95))) if sec is not None else None,
                has_user, successes=int(ok["success"].sum()))  # fmt: skip
    missing = [k for k, v in per.items() if v is None]
    if missing:
        out.notes.append(f"{run.name}: no {', '.join(missing)} token counts recorded in some row(s)")
    if prices is None:
        return out
    pa = price_for(run.model, prices)
    pu = price_for(user_model, prices) if has_user and user_model else None
    lacking = [m for m, p in ((run.model, pa), (user_model, pu)) if p is None and (m == run.model or has_user)]
    if lacking:
        out.notes.append(f"{run.name}: no price for {', '.join(map(str, lacking))} in {prices_path}: cost n/a")
        return out
    if missing:
        return out
    cost = (totals["agent input"] * pa.input + totals["agent output"] * pa.output) / 1e6
    if has_user:
        cost += (totals["user input"] * pu.input + totals["user output"] * pu.output) / 1e6
    out.cost = cost
    out.cost_per_success = cost / out.successes if out.successes else None
    return out


# ---------------------------------------------------------------- flips


def run_flips(run: Run, seed: int = 0) -> Rate | None:
    ok, _ = drop_infra(run.df)
    return flip_rate(ok.groupby("task_id")["success"].apply(list).to_dict(), seed)


def paired_rows(a: Run, b: Run) -> pd.DataFrame:
    """(task_id, rep, success_a, success_b) on the task × seed rows both runs scored."""
    cols = ["task_id", "rep", "success", "infra"]
    m = a.df[cols].merge(b.df[cols], on=["task_id", "rep"], suffixes=("_a", "_b"))
    return m.loc[~(m["infra_a"] | m["infra_b"])]


def paired_flips(a: Run, b: Run, seed: int = 0) -> Rate | None:
    m = paired_rows(a, b)
    pairs = {t: list(zip(g["success_a"], g["success_b"], strict=True)) for t, g in m.groupby("task_id")}
    return verdict_flip_rate(pairs, seed)


def changed_tasks(a: Run, b: Run) -> pd.DataFrame:
    """Tasks whose successes over the shared seeds differ: task_id, a, b, n (seeds)."""
    m = paired_rows(a, b)
    g = m.groupby("task_id").agg(a=("success_a", "sum"), b=("success_b", "sum"), n=("rep", "count"))
    g = g.loc[g["a"] != g["b"]].reset_index()
    g["change"] = g["b"] - g["a"]
    return g.sort_values(["change", "task_id"]).reset_index(drop=True)


# ---------------------------------------------------------------- failures


def component_columns(run: Run) -> list[str]:
    """The reward-component columns eval recorded in the manifest, else the ones the benchmark
    declares (harness.benchmarks), present in the table."""
    declared = run.manifest.get("components")
    if declared is None:
        from harness.benchmarks import benchmark_class

        try:
            declared = benchmark_class(str(run.benchmark)).components
        except KeyError:  # a results table of a benchmark this installation does not have
            declared = []
    return [c for c in declared if c in run.df.columns]


def failures(run: Run) -> pd.DataFrame:
    """Per task: successes, seeds, failure rate, end reasons, failed components (counts over the
    failed rows), failed checks by name; sorted by failure rate (highest first)."""
    ok, _ = drop_infra(run.df)
    comps = component_columns(run)
    rows = []
    for task, g in ok.groupby("task_id"):
        failed = g.loc[~g["success"]]
        reasons = Counter(g["end_reason"].astype(str)) if "end_reason" in g.columns else Counter()
        bad = Counter()
        for c in comps:
            v = pd.to_numeric(failed[c], errors="coerce").dropna()
            bad[c] = sum(not is_success(x) for x in v)  # below 1, by the one success rule
        checks = Counter()
        if "failed_checks" in failed.columns:
            for text in failed["failed_checks"].dropna():
                checks.update(" ".join(x.split()) for x in str(text).split(" | ") if x.strip())  # one line each
        rows.append({"task_id": task, "successes": int(g["success"].sum()), "seeds": len(g),
                     "failure_rate": 1 - float(g["success"].mean()),
                     "end_reasons": ", ".join(f"{k} ×{v}" for k, v in sorted(reasons.items())),
                     "failed_components": ", ".join(f"{k} ×{v}" for k, v in bad.items() if v) or
                                          ("none (failed by the ending)" if len(failed) and comps else ""),
                     "failed_checks": "; ".join(f"{k} ×{v}" for k, v in checks.most_common(3))})  # fmt: skip
    df = pd.DataFrame(rows)
    key = df["task_id"].map(lambda t: (0, int(t), "") if str(t).isdigit() else (1, 0, str(t)))
    return df.assign(_k=key).sort_values(["failure_rate", "_k"], ascending=[False, True]).drop(columns="_k").reset_index(drop=True)


# ---------------------------------------------------------------- markdown


def _f(v: float | None, digits: int = 3) -> str:
    return "n/a" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v:.{digits}f}"


def _tok(v: tuple[float, float] | None) -> str:
    return "n/a" if v is None else f"{v[0]:,.0f} / {v[1]:,.0f}"


def _usd(v: float | None) -> str:
    if v is None:
        return "n/a"
    return f"${v:,.2f}" if v >= 1 else f"${v:.4f}" if v >= 0.01 else f"${v:.6f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    from reports.markdown import table

    return [table(header, rows), ""]


def provenance_section(runs: list[Run]) -> list[str]:
    from harness.provenance import provenance_fields

    fields = [provenance_fields(r.manifest) for r in runs]
    keys = list(fields[0]) if fields else []
    return ["## Provenance", "", "From each run's manifest (\"not recorded\" where an older run lacks it).", "",
            *_table(["run", *keys], [[r.name, *(f[k] for k in keys)] for r, f in zip(runs, fields, strict=True)])]  # fmt: skip


def flips_section(runs: list[Run], pairs: list[tuple[Run, Run]], seed: int = 0) -> list[str]:
    lines = ["## Flip rate", "",
             "Share of tasks whose success differs between eval seeds of one run (runs with ≥ 2 seeds); for a "
             "paired comparison, per task the share of its eval seeds on which the two runs' verdicts differ, "
             "averaged over tasks. 95% percentile bootstrap CIs over tasks (2000 resamples, seed "
             f"{seed}; harness/metrics.py).", ""]  # fmt: skip
    rows = []
    for r in runs:
        f = run_flips(r, seed)
        rows.append([r.name, "one seed: no flip rate" if f is None else f"{f.n_flipped:.0f} of {f.n_tasks}",
                     "n/a" if f is None else f"{_f(f.value)} ({_f(f.low)} to {_f(f.high)})"])  # fmt: skip
    lines += _table(["run", "tasks that flipped", "flip rate (95% CI)"], rows)
    if pairs:
        prow = []
        for a, b in pairs:
            f = paired_flips(a, b, seed)
            prow.append([f"{b.name} vs {a.name}", "n/a" if f is None else str(f.n_tasks),
                         "n/a" if f is None else f"{_f(f.value)} ({_f(f.low)} to {_f(f.high)})"])  # fmt: skip
        lines += _table(["comparison", "tasks", "verdict flip rate (95% CI)"], prow)
    return lines


def usage_section(runs: list[Run], prices: dict[str, Price] | None, prices_path: Path | None) -> list[str]:
    us = [usage(r, prices, prices_path) for r in runs]
    header = ["run", "episodes", "agent in (mean / p95)", "agent out (mean / p95)", "user in (mean / p95)",
              "user out (mean / p95)", "total tokens (agent + user)", "seconds / episode (mean / p95)"]  # fmt: skip
    if prices is not None:
        header += ["cost", "cost / episode", "cost / success"]
    rows = []
    for r, u in zip(runs, us, strict=True):
        tot = [v for v in u.totals.values()]
        total = "n/a" if any(v is None for v in tot) else f"{sum(tot):,.0f}"
        no_user = "no simulated user"
        row = [r.name, str(u.episodes), _tok(u.per_episode.get("agent input")), _tok(u.per_episode.get("agent output")),
               _tok(u.per_episode.get("user input")) if u.has_user else no_user,
               _tok(u.per_episode.get("user output")) if u.has_user else no_user, total,
               "n/a" if u.seconds is None else f"{u.seconds[0]:.1f} / {u.seconds[1]:.1f}"]  # fmt: skip
        if prices is not None:
            row += [_usd(u.cost), _usd(u.cost / u.episodes if u.cost is not None else None),
                    _usd(u.cost_per_success) if u.cost is not None and u.successes else "n/a"]  # fmt: skip
        rows.append(row)
    lines = ["## Tokens and cost", "",
             "Per episode (every row, infra errors included: they used the models too). Tokens as the model "
             "providers reported them (local/ models: prompt and completion token counts)."
             + (f" Cost from {prices_path} (USD per million input / output tokens, by model name)." if prices else
                " No prices given (--prices FILE.toml): no cost column."), ""]  # fmt: skip
    lines += _table(header, rows)
    lines += [f"- {n}" for u in us for n in u.notes]
    return lines + ([""] if any(u.notes for u in us) else [])


def failures_section(runs: list[Run], pairs: list[tuple[Run, Run]]) -> list[str]:
    lines = ["## Appendix: where tasks fail", "",
             "Per task over its eval seeds (infra errors left out): successes, how episodes ended, and the "
             "reward components that were below 1 on the failed episodes (τ³: db_match, communicate_ok; "
             "AppWorld: tests_passed, with the failed tests' requirements). Sorted by failure rate.", ""]  # fmt: skip
    for r in runs:
        df = failures(r)
        never = int((df["failure_rate"] == 0).sum())
        shown = df.loc[df["failure_rate"] > 0]
        lines += [f"### {r.name}", "", f"{len(shown)} of {len(df)} tasks failed at least once ({never} never failed).", ""]
        if shown.empty:
            continue
        has_checks = shown["failed_checks"].astype(bool).any()
        header = ["task", "successes / seeds", "end reasons", "failed components", *(["failed checks"] if has_checks else [])]
        rows = [[str(x.task_id), f"{x.successes} / {x.seeds}", x.end_reasons, x.failed_components or "—",
                 *([x.failed_checks or "—"] if has_checks else [])] for x in shown.itertuples()]  # fmt: skip
        lines += _table(header, rows)
    for a, b in pairs:
        ch = changed_tasks(a, b)
        lines += [f"### Tasks that changed: {b.name} vs {a.name}", ""]
        if ch.empty:
            lines += ["No task's successes over the shared seeds changed.", ""]
            continue
        lines += _table(["task", f"successes {a.name}", f"successes {b.name}", "seeds"],
                        [[str(x.task_id), str(x.a), str(x.b), str(x.n)] for x in ch.itertuples()])  # fmt: skip
    return lines


def sections(runs: list[Run], pairs: list[tuple[Run, Run]], prices: dict[str, Price] | None = None,
             prices_path: Path | None = None, seed: int = 0) -> dict[str, list[str]]:  # fmt: skip
    """The markdown lines of each section, by name."""
    return {"provenance": provenance_section(runs), "flips": flips_section(runs, pairs, seed),
            "usage": usage_section(runs, prices, prices_path), "failures": failures_section(runs, pairs)}  # fmt: skip

