"""reports.tidy (loading and validation) and reports.protocol (same protocol or common subset)."""

from __future__ import annotations

import json
from dataclasses import replace

import pandas as pd
import pytest

from reports.protocol import ProtocolError, differences, harmonize
from reports.synthetic import tidy_table
from reports.tidy import (
    TidyError,
    drop_infra,
    is_binary,
    load_run,
    read_train_log,
    task_scenarios,
    task_seed_matrix,
)


def _write_run(root, name, df, manifest=None, fmt="parquet"):
    d = root / name
    d.mkdir()
    if fmt == "parquet":
        df.to_parquet(d / "results.parquet")
    else:
        df.to_csv(d / "results.csv", index=False)
    if manifest is not None:
        (d / "manifest.json").write_text(json.dumps(manifest))
    return d


def load_run_from_df(df, name="r"):
    from reports.tidy import Run, normalize

    return Run(name, None, normalize(df, name))  # type: ignore[arg-type]


# ---- loading ----------------------------------------------------------------------------------


def test_load_run_directory_file_and_manifest(tmp_path):
    df = tidy_table("m", rng=0, n_tasks=5, infra_rate=0.2)
    d = _write_run(
        tmp_path, "r1", df, {"benchmark": "synthetic", "user_model": "gpt-x", "max_steps": 30}
    )
    run = load_run(d)
    assert run.name == "r1" and run.model == "m" and len(run.df) == 15
    assert run.df["user_model"].eq("gpt-x").all()  # filled from the manifest
    assert run.df["infra"].sum() == df["infra_error"].sum()
    df.to_csv(tmp_path / "bare.csv", index=False)
    bare = load_run(tmp_path / "bare.csv")
    assert bare.name == "bare" and bare.manifest == {}
    assert bare.df["task_id"].tolist() == run.df["task_id"].tolist()
    assert bare.df["scenario"].isna().all() and not bare.clustered


def test_csv_with_text_booleans_and_numeric_task_ids(tmp_path):
    df = pd.DataFrame(
        {
            "model": "m",
            "benchmark": "b",
            "split": "s",
            "task_id": ["007", "8"],
            "seed": [1, 1],
            "reward": [1, 0],
            "success": ["True", "false"],
            "end_reason": ["user_stop", "infra_error"],
        }
    )
    df.to_csv(tmp_path / "t.csv", index=False)
    run = load_run(tmp_path / "t.csv")
    assert run.df["task_id"].tolist() == ["007", "8"]
    assert run.df["success"].tolist() == [True, False]
    assert run.df["infra"].tolist() == [False, True]  # from end_reason
    clean, dropped = drop_infra(run.df)
    assert dropped == 1 and clean["task_id"].tolist() == ["007"]


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda df: df.drop(columns=["reward", "seed"]), "missing required column.*seed, reward"),
        (lambda df: pd.concat([df, df.head(1)]), "duplicate task × seed"),
        (lambda df: df.assign(model=["a", "b"] * (len(df) // 2)), "one model"),
        (lambda df: df.assign(success="maybe"), "must be boolean"),
        (lambda df: df.assign(reward=float("nan")), "without a reward"),
        (
            lambda df: df.assign(scenario_id=["s1"] + [""] * (len(df) - 1)),
            "scenario_id is set on 1",
        ),
        (lambda df: df.head(0), "no rows"),
    ],
)
def test_invalid_tables_fail_with_clear_messages(tmp_path, mutate, message):
    mutate(tidy_table("m", rng=0, n_tasks=4, seeds=(0, 1))).to_parquet(tmp_path / "bad.parquet")
    with pytest.raises(TidyError, match=message):
        load_run(tmp_path / "bad.parquet")


def test_missing_files_and_bad_manifest(tmp_path):
    with pytest.raises(TidyError, match="does not exist"):
        load_run(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(TidyError, match="no results.parquet or results.csv"):
        load_run(tmp_path / "empty")
    d = _write_run(tmp_path, "r", tidy_table("m", rng=0, n_tasks=2), {"model": "other"})
    with pytest.raises(TidyError, match="manifest says model='other'"):
        load_run(d)
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(TidyError, match=".csv or .parquet"):
        load_run(tmp_path / "x.txt")


def test_epochs_become_replicates(tmp_path):
    df = tidy_table("m", rng=0, n_tasks=3, seeds=(7,))
    df = pd.concat([df, df.assign(epoch=2)])
    df.to_parquet(tmp_path / "e.parquet")
    run = load_run(tmp_path / "e.parquet")
    assert sorted(run.df["rep"].unique()) == ["7/1", "7/2"]


def test_matrix_scenarios_and_binary():
    df = tidy_table("m", rng=0, n_tasks=6, seeds=(0, 1), scenario_size=3)
    run = load_run_from_df(df)
    assert task_seed_matrix(run.df, "reward").shape == (6, 2)
    scen = task_scenarios(run.df)
    assert scen is not None and scen.nunique() == 2 and run.clustered
    assert is_binary(run.df["reward"].to_numpy()) and not is_binary([0.5, 1.0])


def test_read_train_log(tmp_path):
    p = tmp_path / "metrics.jsonl"
    p.write_text(
        '{"step": 2, "reward_mean": 0.5, "success_rate": 0.4}\n{"step": 1, "reward_mean": 0.3, '
        '"success_rate": 0.2}\n'
    )
    assert read_train_log(p)["step"].tolist() == [1, 2]
    p.write_text('{"step": 1}\n')
    with pytest.raises(TidyError, match="reward_mean"):
        read_train_log(p)
    with pytest.raises(TidyError, match="does not exist"):
        read_train_log(tmp_path / "none.jsonl")


# ---- protocol -----------------------------------------------------------------------------------


def _pair(**kw):
    a = load_run_from_df(tidy_table("a", rng=0, n_tasks=10), "A")
    b = load_run_from_df(tidy_table("b", rng=1, n_tasks=10, **kw), "B")
    return a, b


def test_same_protocol_passes_and_lists_unknowns():
    a, b = _pair()
    diffs, unknown = differences(a, b)
    assert diffs == [] and "user_model" in unknown and "max_steps" in unknown
    h = harmonize([a, b])
    assert not h.restricted and h.notes == []


def test_task_and_seed_differences_need_the_flag():
    a = load_run_from_df(tidy_table("a", rng=0, n_tasks=10), "A")
    b = load_run_from_df(tidy_table("b", rng=1, n_tasks=8, seeds=(0, 1, 2, 3)), "B")
    with pytest.raises(ProtocolError, match="tasks: A has 10 .*--common-subset"):
        harmonize([a, b])
    h = harmonize([a, b], common_subset=True)
    assert h.restricted and "Restricted to the common subset: 8 tasks × 3 eval seeds" in h.notes[0]
    assert all(len(r.df) == 24 for r in h.runs)


def test_missing_rows_are_a_difference():
    a, b = _pair()
    b = replace(b, df=b.df.iloc[1:].reset_index(drop=True))
    with pytest.raises(ProtocolError, match="task × seed rows"):
        harmonize([a, b])
    assert len(harmonize([a, b], common_subset=True).runs[0].df) == 29


def test_row_settings_without_common_rows_fail_even_with_flag():
    a, b = _pair(temperature=0.7)
    with pytest.raises(ProtocolError, match="temperature"):
        harmonize([a, b])
    with pytest.raises(ProtocolError, match="share no task × seed × setting rows"):
        harmonize([a, b], common_subset=True)


def test_run_level_settings_are_hard_errors():
    a, b = _pair()
    a.manifest, b.manifest = {"max_steps": 30}, {"max_steps": 50}
    with pytest.raises(ProtocolError, match="max_steps: A has 30, B has 50.*rerun"):
        harmonize([a, b], common_subset=True)
    a.manifest, b.manifest = (
        {"data_hashes": {"db.json": "aaaa"}},
        {"data_hashes": {"db.json": "bbbb"}},
    )
    with pytest.raises(ProtocolError, match=r"data version \(db.json\)"):
        harmonize([a, b], common_subset=True)
    a.manifest, b.manifest = (
        {"data_hashes": {"db.json": "aaaa"}},
        {"data_hashes": {"db.json": "aaaa"}},
    )
    assert harmonize([a, b]).unknown.count("data_hashes") == 0


@pytest.mark.parametrize("bad", [float("inf"), -5.0, float("-inf"), 1.5])
def test_rewards_outside_the_benchmarks_range_are_refused_naming_file_and_row(tmp_path, bad):
    df = tidy_table("m", rng=0, n_tasks=4, seeds=(0,))
    df.loc[2, "reward"] = bad
    df.to_csv(tmp_path / "r.csv", index=False)
    with pytest.raises(TidyError, match=r"r\.csv: 1 row\(s\) with a reward outside \[0, 1\].*row 3 \(line 4\)"):
        load_run(tmp_path / "r.csv")


def test_report_cli_refuses_out_of_range_rewards_and_mistyped_train_logs(tmp_path):
    from click.testing import CliRunner

    from reports.cli import compare, report

    good = tidy_table("a", rng=0, n_tasks=4, seeds=(0,))
    bad = tidy_table("b", rng=1, n_tasks=4, seeds=(0,)).assign(reward=[0.0, 1.0, float("inf"), 0.0])
    a, b = _write_run(tmp_path, "a", good), _write_run(tmp_path, "b", bad, fmt="csv")
    res = CliRunner().invoke(compare, [str(a), str(b), "--n-resamples", "100"])
    assert res.exit_code != 0 and "reward outside [0, 1]" in res.output and "results.csv" in res.output
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    log = tmp_path / "metrics.jsonl"
    cases = [
        ('{"step": "two", "reward_mean": 0.5, "success_rate": 0.5}\n', "step must be a whole number"),
        ('{"step": 1, "reward_mean": "high", "success_rate": 0.5}\n', "reward_mean must be a finite number"),
        ('{"step": 1, "reward_mean": 0.5, "success_rate": [1]}\n', "success_rate must be a finite number"),
        ('[1, 2]\n{"step": 1, "reward_mean": 0.5, "success_rate": 0.5}\n', "metrics.jsonl:1 is not a JSON object"),
    ]
    for text, message in cases:
        log.write_text(text)
        res = CliRunner().invoke(report, [str(a), "--out", str(tmp_path / "r.md"), "--no-plots", "--train-log",
                                          str(log), "--n-resamples", "100"])  # fmt: skip
        assert res.exit_code != 0 and message in res.output, (text, res.output)
        assert res.exception is None or isinstance(res.exception, SystemExit), res.exception


def test_train_log_with_a_torn_last_line_is_read_without_it(tmp_path):
    from harness.jsonl import TornLineWarning

    p = tmp_path / "metrics.jsonl"
    p.write_text('{"step": 1, "reward_mean": 0.3, "success_rate": 0.2}\n{"step": 2, "rew')
    with pytest.warns(TornLineWarning, match="metrics.jsonl: dropped a torn last line"):
        assert read_train_log(p)["step"].tolist() == [1]
