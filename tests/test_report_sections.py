"""Report sections: flip rate (checked by hand), tokens and cost from a prices file, where tasks
fail, provenance."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from click.testing import CliRunner

from harness.metrics import flip_rate, verdict_flip_rate
from reports.cli import report
from reports.sections import changed_tasks, failures, load_prices, paired_flips, run_flips, usage
from reports.tidy import TidyError, load_run

# A small table: 4 tasks × 2 eval seeds. Run a: task 1 flips (pass, fail), task 2 always passes,
# task 3 always fails, task 4 flips (fail, pass). Run b: task 1 (pass, pass), 2 (pass, fail),
# 3 (fail, fail), 4 (fail, pass).
A = {"1": (1, 0), "2": (1, 1), "3": (0, 0), "4": (0, 1)}
B = {"1": (1, 1), "2": (1, 0), "3": (0, 0), "4": (0, 1)}


def _rows(model, table, user="sim-user", **extra):
    rows = []
    for task, flags in table.items():
        for seed, ok in enumerate(flags):
            rows.append({"model": model, "user_model": user, "benchmark": "tau3-airline", "split": "test",
                         "task_id": task, "seed": seed, "temperature": 0.0, "reward": float(ok), "success": bool(ok),
                         "end_reason": "user_stop" if ok or task != "3" else "max_steps", "infra_error": False,
                         "db_match": float(ok or task == "1"), "communicate_ok": float(ok or task != "1"),
                         "turns": 4, "input_tokens": 1000 + 100 * seed, "output_tokens": 50,
                         "user_input_tokens": 400, "user_output_tokens": 20, "seconds": 2.0 + seed, **extra})  # fmt: skip
    return pd.DataFrame(rows)


def _run(tmp_path, name, df, manifest=None):
    d = tmp_path / name
    d.mkdir()
    df.to_parquet(d / "results.parquet")
    (d / "manifest.json").write_text(json.dumps(manifest or {"max_steps": 30, "max_errors": 5}))
    return d


def test_flip_rate_by_hand():
    f = flip_rate({t: [bool(x) for x in v] for t, v in A.items()}, n_resamples=500)
    assert f.value == 0.5 and f.n_tasks == 4 and f.n_flipped == 2  # tasks 1 and 4 of 4
    assert 0.0 <= f.low <= 0.5 <= f.high <= 1.0 and f.low < f.high
    # verdicts a vs b per task: task 1 differs on seed 1, task 2 on seed 1, tasks 3, 4 on none
    pairs = {t: [(bool(x), bool(y)) for x, y in zip(A[t], B[t], strict=True)] for t in A}
    v = verdict_flip_rate(pairs, n_resamples=500)
    assert v.value == pytest.approx((0.5 + 0.5 + 0 + 0) / 4) and v.n_tasks == 4
    # tasks with one trial are left out; no task with two: no flip rate at all
    assert flip_rate({"1": [True, False], "2": [True]}).n_tasks == 1
    assert flip_rate({"1": [True], "2": [False]}) is None
    assert flip_rate({"1": [True, True], "2": [False, False]}).value == 0.0


def test_flip_rates_from_runs_and_changed_tasks(tmp_path):
    a = load_run(_run(tmp_path, "a", _rows("m-a", A)))
    b = load_run(_run(tmp_path, "b", _rows("m-b", B)))
    assert run_flips(a).value == 0.5 and run_flips(b).n_flipped == 2  # b: tasks 2 and 4 flip
    assert paired_flips(a, b).value == pytest.approx(0.25)
    ch = changed_tasks(a, b)
    assert ch[["task_id", "a", "b"]].values.tolist() == [["2", 2, 1], ["1", 1, 2]]


def test_failures_appendix_per_task(tmp_path):
    a = load_run(_run(tmp_path, "a", _rows("m-a", A)))
    f = failures(a).set_index("task_id")
    assert list(f.index) == ["3", "1", "4", "2"]  # by failure rate, then task number
    assert f.loc["3", "successes"] == 0 and f.loc["3", "end_reasons"] == "max_steps ×2"
    assert f.loc["3", "failed_components"] == "db_match ×2"
    assert f.loc["1", "failed_components"] == "communicate_ok ×1"  # task 1 fails on what it never said
    assert f.loc["4", "failed_components"] == "db_match ×1"
    assert f.loc["2", "failure_rate"] == 0.0


def test_cost_column_from_a_prices_file(tmp_path):
    prices = tmp_path / "prices.toml"
    prices.write_text('["m-a"]\ninput = 2.0\noutput = 10.0\n\n["sim-user"]\ninput = 0.5\noutput = 1.0\n')
    a = load_run(_run(tmp_path, "a", _rows("openai-api/x/m-a", A)))
    u = usage(a, load_prices(prices), prices)
    # 8 episodes: agent input 4 × 1000 + 4 × 1100, output 8 × 50; user 8 × 400 in, 8 × 20 out
    want = (8400 * 2.0 + 400 * 10.0 + 3200 * 0.5 + 160 * 1.0) / 1e6
    assert u.cost == pytest.approx(want) and u.successes == 4
    assert u.cost_per_success == pytest.approx(want / 4)
    assert u.per_episode["agent input"] == (1050.0, pytest.approx(1100.0))
    out = tmp_path / "r.md"
    res = CliRunner().invoke(report, [str(tmp_path / "a"), "--out", str(out), "--no-plots", "--prices", str(prices),
                                      "--n-resamples", "200"])  # fmt: skip
    assert res.exit_code == 0, res.output
    text = out.read_text()
    assert "## Tokens and cost" in text and "| cost | cost / episode | cost / success |" in text
    assert f"${want:.4f}" in text and f"${want / 4:.6f}" in text and f"${want / 8:.6f}" in text


def test_missing_usage_or_price_says_na_never_zero(tmp_path):
    df = _rows("m-a", A)
    df.loc[0, "input_tokens"] = 0  # an episode that took turns but recorded no tokens
    a = load_run(_run(tmp_path, "a", df))
    prices = tmp_path / "p.toml"
    prices.write_text('["m-a"]\ninput = 1\noutput = 1\n["sim-user"]\ninput = 1\noutput = 1\n')
    u = usage(a, load_prices(prices), prices)
    assert u.per_episode["agent input"] is None and u.cost is None and "agent input" in u.notes[0]
    b = load_run(_run(tmp_path, "b", _rows("other-model", A)))
    ub = usage(b, load_prices(prices), prices)
    assert ub.cost is None and "no price for other-model" in ub.notes[0]


@pytest.mark.parametrize("text, match", [
    ('["m"]\ninput = 1\n', "lacks output"),
    ('["m"]\ninput = -1\noutput = 1\n', "non-negative"),
    ('m = 3\n', "must be a table"),
    ('["m"]\ninput = 1\noutput = 1\nouput = 2\n', "unknown key"),
    ("not toml [", "could not read prices"),
])  # fmt: skip
def test_bad_prices_files_name_the_problem(tmp_path, text, match):
    p = tmp_path / "p.toml"
    p.write_text(text)
    with pytest.raises(TidyError, match=match):
        load_prices(p)


def test_report_has_provenance_flips_and_appendix(tmp_path):
    manifest = {"max_steps": 30, "max_errors": 5, "provenance": {
        "data": {"data_version": "sierra-research/tau2-bench@a2c024725189", "data_hashes": {"db.json": "1af9fea6e03ca7"}},
        "agent": {"model": "m-a", "backend": "transformers generate (torch 2.13.0)", "dtype": "float32", "device": "cpu"},
        "user": {"model": "sim-user", "temperature": 0.0, "backend": "as the agent"},
        "project": {"version": "0.1.0", "git_commit": "0123456789abcdef"}}}  # fmt: skip
    a = _run(tmp_path, "a", _rows("m-a", A), manifest)
    b = _run(tmp_path, "b", _rows("m-b", B), {"max_steps": 30, "max_errors": 5, "git_commit": "fedcba9876543210",
                                                "packages": {"sgcd-bench": "0.0.9"}})  # fmt: skip
    out = tmp_path / "r.md"
    res = CliRunner().invoke(report, [str(a), str(b), "--out", str(out), "--no-plots", "--n-resamples", "200"])
    assert res.exit_code == 0, res.output
    text = out.read_text()
    assert "sierra-research/tau2-bench@a2c024725189; db.json 1af9fea6e03c" in text
    assert "transformers generate (torch 2.13.0) (dtype float32, device cpu)" in text
    assert "sgcd-bench 0.1.0, git 0123456789ab" in text and "sgcd-bench 0.0.9, git fedcba987654" in text
    assert "| a | 2 of 4 | 0.500 (" in text and "| b vs a | 4 | 0.250 (" in text
    assert "### Tasks that changed: b vs a" in text and "| 2 | 2 | 1 | 2 |" in text
    assert "## Appendix: where tasks fail" in text and "3 of 4 tasks failed at least once" in text
    assert "No prices given" in text


def test_appendix_names_failed_checks(tmp_path):
    df = _rows("m-a", A)
    df["failed_checks"] = [None if ok else "assert the song was liked | assert\nno extra calls" for ok in df["success"]]
    a = load_run(_run(tmp_path, "a", df))
    f = failures(a).set_index("task_id")
    assert f.loc["3", "failed_checks"] == "assert the song was liked ×2; assert no extra calls ×2"
    assert f.loc["2", "failed_checks"] == ""
