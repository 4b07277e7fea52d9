"""Load tidy results (a run directory or a bare CSV/parquet file), validate, aggregate per task.

A tidy table has one row per task × eval seed. Required columns: model, benchmark, split,
task_id, seed, reward, success. Optional: scenario_id (set for AppWorld), epoch, infra_error,
end_reason, user_model, temperature, reward components, token and time counts.

After loading, every table has these derived columns:
    rep       the eval replicate: str(seed), or "seed/epoch" when a task × seed has several epochs
    infra     bool; infra_error or end_reason == "infra_error" (left out of every metric, counted)
    scenario  str or None; scenario_id with empty strings / NaN as None
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness.records import REWARD_RANGE

REQUIRED_COLUMNS = ("model", "benchmark", "split", "task_id", "seed", "reward", "success")
# Settings that are a property of every row: filled from the manifest when the column is absent.
ROW_SETTINGS = ("user_model", "temperature")
RESULT_FILES = ("results.parquet", "results.csv")
TRAIN_LOG = Path("train") / "metrics.jsonl"


class TidyError(ValueError):
    """Results that cannot be read or do not have the tidy shape; the message says what and how."""


@dataclass
class Run:
    """One evaluated model: its tidy rows, manifest (possibly empty) and where it came from."""

    name: str
    path: Path
    df: pd.DataFrame
    manifest: dict[str, Any] = field(default_factory=dict)
    train_logs: list[Path] = field(default_factory=list)

    @property
    def model(self) -> str:
        return str(self.df["model"].iloc[0])

    @property
    def benchmark(self) -> str:
        return str(self.df["benchmark"].iloc[0])

    @property
    def split(self) -> str:
        return str(self.df["split"].iloc[0])

    @property
    def clustered(self) -> bool:
        """True when scenario_id is set (AppWorld): errors are then clustered by scenario."""
        return bool(self.df["scenario"].notna().any())

    def label(self, key: str) -> str | None:
        """A manifest value, else the run's single value of column `key`, else None."""
        if key in self.manifest and self.manifest[key] is not None:
            return str(self.manifest[key])
        if key in self.df.columns:
            values = self.df[key].dropna().unique()
            if len(values) == 1:
                return str(values[0])
        return None


def _read_table(path: Path) -> pd.DataFrame:
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            return pd.read_parquet(path)
        if suffix == ".csv":
            return pd.read_csv(path, dtype={"task_id": str, "scenario_id": str})
    except (OSError, ValueError) as e:
        raise TidyError(f"could not read {path}: {e}") from e
    raise TidyError(f"{path}: expected a .csv or .parquet tidy results file")


def to_bool(series: pd.Series, name: str, path: Path) -> pd.Series:
    """Booleans from bool, 0/1 or true/false text; anything else is an error naming the column."""
    if series.dtype == bool:
        return series
    mapping = {"true": True, "false": False, "1": True, "0": False, "1.0": True, "0.0": False}
    text = series.map(lambda v: str(v).strip().lower() if pd.notna(v) else "")
    bad = sorted(set(text) - set(mapping))
    if bad:
        raise TidyError(f"{path}: column {name!r} must be boolean; found {bad[:5]}")
    return text.map(mapping).astype(bool)


def _scenario(series: pd.Series) -> pd.Series:
    text = series.map(lambda v: None if pd.isna(v) or str(v).strip() in ("", "nan") else str(v))
    return text.astype(object)


def normalize(df: pd.DataFrame, path: Path, manifest: dict[str, Any] | None = None) -> pd.DataFrame:
    """Validate a raw tidy table and add the derived columns (rep, infra, scenario)."""
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise TidyError(
            f"{path}: missing required column(s) {', '.join(missing)}; "
            f"a tidy table needs {', '.join(REQUIRED_COLUMNS)}"
        )
    if df.empty:
        raise TidyError(f"{path}: the results table has no rows")
    df = df.copy()
    manifest = manifest or {}
    for col in ("model", "benchmark", "split", "task_id"):
        df[col] = df[col].astype(str)
    for col in ("model", "benchmark", "split"):
        values = sorted(df[col].unique())
        if len(values) > 1:
            raise TidyError(f"{path}: a run holds one {col}; found {len(values)}: {values[:5]}")
        if col in manifest and manifest[col] is not None and str(manifest[col]) != values[0]:
            raise TidyError(
                f"{path}: manifest says {col}={manifest[col]!r}, results say {values[0]!r}"
            )
    for col in ROW_SETTINGS:
        if col not in df.columns and manifest.get(col) is not None:
            df[col] = manifest[col]
    df["seed"] = pd.to_numeric(df["seed"], errors="raise").astype(int)
    df["reward"] = pd.to_numeric(df["reward"], errors="coerce").astype(float)
    df["success"] = to_bool(df["success"].fillna(False), "success", path)
    infra = pd.Series(False, index=df.index)
    if "infra_error" in df.columns:
        infra |= to_bool(df["infra_error"].fillna(False), "infra_error", path)
    if "end_reason" in df.columns:
        infra |= df["end_reason"].astype(str).eq("infra_error")
    df["infra"] = infra
    low, high = REWARD_RANGE
    reward = df["reward"].to_numpy(dtype=float)
    outside = ~np.isnan(reward) & ~((reward >= low) & (reward <= high))  # inf and -inf included
    if outside.any():
        i = int(np.flatnonzero(outside)[0])
        raise TidyError(
            f"{path}: {int(outside.sum())} row(s) with a reward outside [{low:g}, {high:g}] (every "
            f"benchmark's range), e.g. row {_row_label(path, i)} (task_id {df['task_id'].iloc[i]!r}, "
            f"seed {df['seed'].iloc[i]}): reward {reward[i]!r}"
        )
    bad_reward = df["reward"].isna() & ~df["infra"]
    if bad_reward.any():
        raise TidyError(
            f"{path}: {int(bad_reward.sum())} row(s) without a reward that are not infra errors"
        )
    df["scenario"] = _scenario(df["scenario_id"]) if "scenario_id" in df.columns else None
    has = df["scenario"].notna()
    if has.any() and not has.all():
        raise TidyError(
            f"{path}: scenario_id is set on {int(has.sum())} of {len(df)} rows; "
            "set it on all or none"
        )
    key = ["task_id", "seed"]
    if "epoch" in df.columns and df.duplicated(key).any():
        df["rep"] = df["seed"].astype(str) + "/" + df["epoch"].astype(str)
    else:
        df["rep"] = df["seed"].astype(str)
    dup = df.duplicated(["task_id", "rep"])
    if dup.any():
        first = df.loc[dup, ["task_id", "rep"]].iloc[0].tolist()
        raise TidyError(
            f"{path}: {int(dup.sum())} duplicate task × seed row(s), e.g. task_id, seed = {first}"
        )
    return df.reset_index(drop=True)


def _row_label(path: Path, i: int) -> str:
    """Where data row i (0-based) is in its file: a CSV line number, else a row index."""
    return f"{i + 1} (line {i + 2})" if path.suffix.lower() == ".csv" else str(i + 1)


def load_run(path: str | Path) -> Run:
    """A run directory (results.parquet or results.csv, optional manifest.json) or a tidy file."""
    path = Path(path)
    if not path.exists():
        raise TidyError(
            f"{path} does not exist; give a run directory (runs/NAME) or a tidy .csv/.parquet file"
        )
    manifest: dict[str, Any] = {}
    train_logs: list[Path] = []
    if path.is_dir():
        found = [path / f for f in RESULT_FILES if (path / f).is_file()]
        if not found:
            raise TidyError(
                f"{path}: no {' or '.join(RESULT_FILES)}; evaluate into this run directory first "
                "or point at a tidy .csv/.parquet file"
            )
        table_path = found[0]
        if (path / "manifest.json").is_file():
            try:
                manifest = json.loads((path / "manifest.json").read_text())
            except json.JSONDecodeError as e:
                raise TidyError(f"{path / 'manifest.json'} is not valid JSON: {e}") from e
            if not isinstance(manifest, dict):
                raise TidyError(f"{path / 'manifest.json'} must hold a JSON object")
        if (path / TRAIN_LOG).is_file():
            train_logs.append(path / TRAIN_LOG)
        name = path.name
    else:
        table_path = path
        name = path.stem
    df = normalize(_read_table(table_path), table_path, manifest)
    return Run(name=name, path=path, df=df, manifest=manifest, train_logs=train_logs)


def drop_infra(df: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Rows without infra errors, and how many rows were dropped."""
    keep = ~df["infra"].to_numpy(dtype=bool)
    return df.loc[keep].reset_index(drop=True), int((~keep).sum())


def task_seed_matrix(df: pd.DataFrame, metric: str) -> pd.DataFrame:
    """(n_tasks, n_reps): `metric` per task (rows) × eval replicate (columns), NaN if absent."""
    values = df[metric].astype(float)
    return df.assign(_v=values).pivot(index="task_id", columns="rep", values="_v").sort_index()


def task_scenarios(df: pd.DataFrame) -> pd.Series | None:
    """scenario per task_id (index), or None when the run has no scenarios."""
    if df["scenario"].isna().all():
        return None
    per_task = df.groupby("task_id")["scenario"].nunique()
    if (per_task > 1).any():
        raise TidyError(f"task {per_task[per_task > 1].index[0]!r} has several scenario_ids")
    return df.groupby("task_id")["scenario"].first().sort_index()


def is_binary(values: np.ndarray) -> bool:
    """True when every value is 0 or 1 (a pass/fail outcome)."""
    values = np.asarray(values, dtype=float)
    return bool(np.isin(values[~np.isnan(values)], (0.0, 1.0)).all())


def read_train_log(path: str | Path) -> pd.DataFrame:
    """A training log (JSON lines with at least step, reward_mean, success_rate) as a DataFrame."""
    path = Path(path)
    if not path.is_file():
        raise TidyError(
            f"training log {path} does not exist (expected runs/NAME/train/metrics.jsonl)"
        )
    from harness.jsonl import JsonlError, read_jsonl

    try:
        rows = read_jsonl(path)  # a torn last line (a run still writing, or killed) is dropped
    except (JsonlError, OSError) as e:
        raise TidyError(str(e)) from e
    log = pd.DataFrame(rows)
    missing = [c for c in ("step", "reward_mean", "success_rate") if c not in log.columns]
    if log.empty or missing:
        raise TidyError(
            f"{path}: training log needs step, reward_mean, success_rate; "
            f"missing {missing or 'rows'}"
        )
    for i, row in enumerate(rows, start=1):
        step = row.get("step")
        if isinstance(step, bool) or not isinstance(step, int) or step < 0:
            raise TidyError(f"{path}: record {i}: step must be a whole number ≥ 0; got {step!r}")
        for key in ("reward_mean", "success_rate"):
            v = row.get(key)
            ok = v is None or (isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v))
            if not ok:
                raise TidyError(f"{path}: record {i} (step {step}): {key} must be a finite number or null; got {v!r}")
    log["reward_mean"] = log["reward_mean"].astype(float)
    log["success_rate"] = log["success_rate"].astype(float)
    return log.sort_values("step").reset_index(drop=True)
