"""Check that runs were evaluated under one protocol; on request, restrict them to a common subset.

Compared: tasks, eval seeds, benchmark, split, user model, temperature (row settings, from the
table or the manifest), step and error caps, data hashes (manifest). A difference is an error
naming it. With `common_subset=True`, runs are cut to the task × seed × setting rows they all
share and the report says so; run-level settings (caps, data version) have no common subset, so
a difference there stays an error. A setting missing on one side is recorded as unknown.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import pandas as pd

from reports.tidy import Run

ROW_FIELDS = ("benchmark", "split", "user_model", "temperature")
RUN_FIELDS = ("max_steps", "max_errors")


class ProtocolError(ValueError):
    """Runs that may not be compared as they are; the message names every difference."""


@dataclass(frozen=True)
class Difference:
    """One protocol difference of two runs; `restrictable`: a common subset of rows may exist."""

    field: str
    a: str
    b: str
    restrictable: bool


@dataclass
class Harmonized:
    """Runs ready to compare, what was restricted, and which settings could not be checked."""

    runs: list[Run]
    notes: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    restricted: bool = False


def _norm(v: object) -> str:
    try:
        return f"{float(v):g}"  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return str(v)


def _row_values(run: Run, col: str) -> set[str] | None:
    if col not in run.df.columns or run.df[col].isna().all():
        return None
    return {_norm(v) for v in run.df[col].dropna().unique()}


def _show(values: set[str], limit: int = 6) -> str:
    items = sorted(values)
    return ", ".join(items[:limit]) + (f", … ({len(items)} in all)" if len(items) > limit else "")


def _set_difference(name: str, a: set[str], b: set[str]) -> Difference:
    only_a, only_b = a - b, b - a
    return Difference(
        name,
        f"{len(a)} ({len(only_a)} not in the other: {_show(only_a)})" if only_a else f"{len(a)}",
        f"{len(b)} ({len(only_b)} not in the other: {_show(only_b)})" if only_b else f"{len(b)}",
        True,
    )


def differences(a: Run, b: Run) -> tuple[list[Difference], list[str]]:
    """Protocol differences between runs a and b, and the settings unknown on either side."""
    diffs: list[Difference] = []
    unknown: list[str] = []
    for col in ROW_FIELDS:
        va, vb = _row_values(a, col), _row_values(b, col)
        if va is None or vb is None:
            unknown.append(col)
        elif va != vb:
            diffs.append(Difference(col, _show(va), _show(vb), True))
    tasks_a, tasks_b = set(a.df["task_id"]), set(b.df["task_id"])
    seeds_a, seeds_b = set(a.df["rep"]), set(b.df["rep"])
    if tasks_a != tasks_b:
        diffs.append(_set_difference("tasks", tasks_a, tasks_b))
    if seeds_a != seeds_b:
        diffs.append(_set_difference("eval seeds", seeds_a, seeds_b))
    if tasks_a == tasks_b and seeds_a == seeds_b:
        keys_a = set(zip(a.df["task_id"], a.df["rep"], strict=True))
        keys_b = set(zip(b.df["task_id"], b.df["rep"], strict=True))
        if keys_a != keys_b:
            diffs.append(
                Difference(
                    "task × seed rows",
                    f"{len(keys_a - keys_b)} unmatched",
                    f"{len(keys_b - keys_a)} unmatched",
                    True,
                )
            )
    common = sorted(tasks_a & tasks_b)
    scen_a = a.df.groupby("task_id")["scenario"].first().reindex(common)
    scen_b = b.df.groupby("task_id")["scenario"].first().reindex(common)
    if not scen_a.fillna("").equals(scen_b.fillna("")):
        diffs.append(Difference("scenario_id of shared tasks", "differs", "differs", False))
    for key in RUN_FIELDS:
        ma, mb = a.manifest.get(key), b.manifest.get(key)
        if ma is None or mb is None:
            unknown.append(key)
        elif _norm(ma) != _norm(mb):
            diffs.append(Difference(key, _norm(ma), _norm(mb), False))
    ha, hb = a.manifest.get("data_hashes"), b.manifest.get("data_hashes")
    if not isinstance(ha, dict) or not isinstance(hb, dict):
        unknown.append("data_hashes")
    else:
        for name in sorted(set(ha) & set(hb)):
            if ha[name] != hb[name]:
                diffs.append(
                    Difference(
                        f"data version ({name})", str(ha[name])[:12], str(hb[name])[:12], False
                    )
                )
    return diffs, unknown


def _describe(diffs: list[Difference], a: Run, b: Run) -> str:
    return "; ".join(f"{d.field}: {a.name} has {d.a}, {b.name} has {d.b}" for d in diffs)


def harmonize(runs: list[Run], common_subset: bool = False) -> Harmonized:
    """Check every run against the first; if asked (and needed) restrict all to common rows."""
    if not runs:
        raise ProtocolError("no runs given")
    out = Harmonized(runs=list(runs))
    restrictable: list[str] = []
    for other in runs[1:]:
        diffs, unknown = differences(runs[0], other)
        out.unknown.extend(u for u in unknown if u not in out.unknown)
        hard = [d for d in diffs if not d.restrictable]
        if hard:
            raise ProtocolError(
                f"runs differ in protocol — {_describe(hard, runs[0], other)}. These are run-level "
                "settings: no subset of the rows was evaluated under one protocol; "
                "rerun with matching settings."
            )
        soft = [d for d in diffs if d.restrictable]
        if soft and not common_subset:
            raise ProtocolError(
                f"runs differ in protocol — {_describe(soft, runs[0], other)}. Rerun under one "
                "protocol, or pass --common-subset to compare only the rows they share "
                "(the report will say so)."
            )
        restrictable.extend(f"{d.field} ({runs[0].name}: {d.a}; {other.name}: {d.b})" for d in soft)
    if not restrictable:
        return out
    key = ["task_id", "rep"] + [
        c for c in ROW_FIELDS if all(_row_values(r, c) is not None for r in runs)
    ]

    def keys(run: Run) -> pd.MultiIndex:
        frame = run.df[key].astype(str)
        for col in key[2:]:
            frame[col] = run.df[col].map(_norm)
        return pd.MultiIndex.from_frame(frame)

    common = keys(runs[0])
    for run in runs[1:]:
        common = common.intersection(keys(run))
    if len(common) == 0:
        raise ProtocolError(
            f"the runs share no task × seed × setting rows; differences: {'; '.join(restrictable)}"
        )
    restricted = []
    for run in runs:
        mask = keys(run).isin(common)
        restricted.append(replace(run, df=run.df.loc[mask].reset_index(drop=True)))
    n_tasks = len(set(restricted[0].df["task_id"]))
    n_seeds = len(set(restricted[0].df["rep"]))
    sizes = ", ".join(
        f"{r.name}: {r.df['task_id'].nunique()} tasks × {r.df['rep'].nunique()} seeds" for r in runs
    )
    out.runs, out.restricted = restricted, True
    out.notes.append(
        f"Restricted to the common subset: {n_tasks} tasks × {n_seeds} eval seeds "
        f"({len(common)} rows) "
        f"shared by all runs (before: {sizes}). Differences: {'; '.join(restrictable)}."
    )
    return out
