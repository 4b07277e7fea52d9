"""The `compare` and `report` click commands, run through CliRunner on synthetic runs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from reports.cli import compare, report
from reports.synthetic import tidy_table

JSON_KEYS = {
    "n_tasks",
    "n_seeds",
    "mean_a",
    "mean_b",
    "diff",
    "ci_low",
    "ci_high",
    "p_ttest",
    "p_wilcoxon",
    "p_permutation",
    "p_mcnemar",
    "mde",
    "dropped_infra",
}
FAST = ["--n-resamples", "300"]


def _run_dir(root, name, df, manifest=None, train_log=False):
    d = root / name
    d.mkdir()
    df.to_parquet(d / "results.parquet")
    (d / "manifest.json").write_text(json.dumps(manifest or {"max_steps": 30, "user_model": "sim"}))
    if train_log:
        (d / "train").mkdir()
        (d / "train" / "metrics.jsonl").write_text(
            "\n".join(
                json.dumps({"step": i, "reward_mean": 0.1 * i, "success_rate": 0.05 * i})
                for i in range(5)
            )
        )
    return d


@pytest.fixture
def runs(tmp_path):
    a = _run_dir(tmp_path, "base", tidy_table("grpo", rng=0, n_tasks=40, infra_rate=0.03))
    b = _run_dir(
        tmp_path, "sgcd", tidy_table("sgcd", rng=1, n_tasks=40, effect=1.0), train_log=True
    )
    return a, b


def _ok(result):
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result.output


def test_compare_json(runs):
    a, b = runs
    out = json.loads(_ok(CliRunner().invoke(compare, [str(a), str(b), "--json", *FAST])))
    assert JSON_KEYS <= set(out)
    assert out["n_tasks"] == 40 and out["n_seeds"] == 3 and out["p_mcnemar"] is None
    assert out["diff"] == pytest.approx(out["mean_b"] - out["mean_a"])
    assert out["ci_low"] < out["diff"] < out["ci_high"] and out["dropped_infra"] > 0
    assert out["restricted"] is False and "prove" not in out["verdict"]
    assert out["null_floor"] is None and "no null-agent floor is defined" in out["null_floor_note"]
    again = json.loads(_ok(CliRunner().invoke(compare, [str(a), str(b), "--json", *FAST])))
    assert again == out  # seeded resampling: reproducible


def test_compare_tidy_files_single_seed_gives_mcnemar(tmp_path):
    tidy_table("a", rng=0, n_tasks=30, seeds=(5,)).to_csv(tmp_path / "a.csv", index=False)
    tidy_table("b", rng=1, n_tasks=30, seeds=(5,)).to_parquet(tmp_path / "b.parquet")
    out = json.loads(
        _ok(
            CliRunner().invoke(
                compare, [str(tmp_path / "a.csv"), str(tmp_path / "b.parquet"), "--json", *FAST]
            )
        )
    )
    assert out["n_seeds"] == 1 and 0.0 <= out["p_mcnemar"] <= 1.0


def test_compare_table_output(runs):
    text = _ok(CliRunner().invoke(compare, [str(runs[0]), str(runs[1]), *FAST]))
    assert "95% CI (paired BCa bootstrap)" in text and "sgcd scores higher than base" in text


def test_compare_protocol_mismatch_is_an_error_or_restricted(tmp_path):
    a = _run_dir(tmp_path, "a", tidy_table("a", rng=0, n_tasks=30))
    b = _run_dir(tmp_path, "b", tidy_table("b", rng=1, n_tasks=25))
    res = CliRunner().invoke(compare, [str(a), str(b), "--json", *FAST])
    assert res.exit_code != 0 and "--common-subset" in res.output
    out = json.loads(
        _ok(CliRunner().invoke(compare, [str(a), str(b), "--json", "--common-subset", *FAST]))
    )
    assert (
        out["restricted"] is True
        and out["n_tasks"] == 25
        and "common subset" in out["protocol_notes"][0]
    )
    c = _run_dir(
        tmp_path, "c", tidy_table("c", rng=1, n_tasks=30), {"max_steps": 50, "user_model": "sim"}
    )
    res = CliRunner().invoke(compare, [str(a), str(c), "--common-subset", *FAST])
    assert res.exit_code != 0 and "max_steps" in res.output


def test_compare_bad_input_names_the_problem(tmp_path):
    tidy_table("a", rng=0, n_tasks=5).drop(columns=["success"]).to_csv(
        tmp_path / "a.csv", index=False
    )
    tidy_table("b", rng=0, n_tasks=5).to_csv(tmp_path / "b.csv", index=False)
    res = CliRunner().invoke(compare, [str(tmp_path / "a.csv"), str(tmp_path / "b.csv")])
    assert res.exit_code != 0 and "missing required column(s) success" in res.output


def test_report_with_plots(runs, tmp_path):
    out = tmp_path / "out" / "report.md"
    _ok(CliRunner().invoke(report, [*map(str, runs), "--out", str(out), *FAST]))
    md = out.read_text()
    for heading in (
        "## Inputs",
        "## Protocol",
        "## Results per run",
        "### Null-agent floor",
        "## Paired comparisons",
        "## Plots",
    ):
        assert heading in md
    assert "mean ± SD over seeds" in md and "p (Wilcoxon)" in md and "zero_method='pratt'" in md
    assert "not available — no null-agent floor is defined for benchmark 'synthetic'" in md
    assert "sgcd scores higher than base" in md and "published" not in md
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert len(images) == 3  # scatter, forest, learning curves (found under runs/sgcd/train)
    for rel in images:
        png = out.parent / rel
        assert png.is_file() and png.read_bytes()[:4] == b"\x89PNG"


def test_report_without_plots_and_single_run(runs, tmp_path):
    out = tmp_path / "single.md"
    _ok(CliRunner().invoke(report, [str(runs[0]), "--out", str(out), "--no-plots", *FAST]))
    md = out.read_text()
    assert "![" not in md and not (tmp_path / "single_plots").exists()
    assert "## Paired comparisons" not in md and "| base | grpo | 40 × 3 |" in md
    assert "base (grpo) scores" not in md  # no floor: a run's sentence would only repeat its row
    assert "infra errors left out of every metric" in md


def test_report_published_column_is_labelled_and_isolated(runs, tmp_path):
    pub = tmp_path / "published.json"
    pub.write_text(json.dumps({"sgcd": {"value": 0.602, "source": "arXiv 2606.12634, Table 2"}}))
    out = tmp_path / "r.md"
    _ok(
        CliRunner().invoke(
            report,
            [*map(str, runs), "--out", str(out), "--no-plots", "--published", str(pub), *FAST],
        )
    )
    md = out.read_text()
    assert "published (cited, not measured here)" in md and "0.602 [published]" in md
    assert md.count("0.602") == 1 and "arXiv 2606.12634, Table 2" in md
    pub.write_text(json.dumps({"sgcd": {"value": 0.602}}))
    res = CliRunner().invoke(
        report, [*map(str, runs), "--out", str(out), "--published", str(pub), *FAST]
    )
    assert res.exit_code != 0 and "source" in res.output


def test_report_training_seeds_and_explicit_train_log(tmp_path):
    paths = []
    for method, effect in (("grpo", 0.0), ("sgcd", 0.6)):
        for seed in (1, 2, 3):
            df = tidy_table(method, rng=seed * 7 + int(10 * effect), n_tasks=30, effect=effect)
            paths.append(
                str(
                    _run_dir(
                        tmp_path,
                        f"{method}{seed}",
                        df,
                        {"method": method, "train_seed": seed, "user_model": "sim"},
                    )
                )
            )
    log = tmp_path / "log.jsonl"
    log.write_text('{"step": 0, "reward_mean": 0.1, "success_rate": 0.1}\n')
    out = tmp_path / "seeds.md"
    _ok(CliRunner().invoke(report, [*paths, "--out", str(out), "--train-log", str(log), *FAST]))
    md = out.read_text()
    assert "## Training seeds" in md and "IQM 95% CI" in md and "P(sgcd > grpo)" in md
    assert "sgcd1 − grpo1" in md and "sgcd3 − grpo3" in md and "Holm" in md
    assert (tmp_path / "seeds_plots" / "learning_curves.png").is_file()


def test_report_common_subset_is_stated(tmp_path):
    a = _run_dir(tmp_path, "a", tidy_table("a", rng=0, n_tasks=30))
    b = _run_dir(tmp_path, "b", tidy_table("b", rng=1, n_tasks=30, seeds=(0, 1)))
    out = tmp_path / "r.md"
    res = CliRunner().invoke(report, [str(a), str(b), "--out", str(out), *FAST])
    assert res.exit_code != 0 and "eval seeds" in res.output
    _ok(
        CliRunner().invoke(
            report, [str(a), str(b), "--out", str(out), "--common-subset", "--no-plots", *FAST]
        )
    )
    assert "**Restricted to the common subset: 30 tasks × 2 eval seeds" in out.read_text()


def test_report_scenarios_show_sgc_and_clustering(tmp_path):
    a = _run_dir(tmp_path, "a", tidy_table("a", rng=0, n_tasks=30, scenario_size=3))
    b = _run_dir(tmp_path, "b", tidy_table("b", rng=1, n_tasks=30, scenario_size=3, effect=0.5))
    out = tmp_path / "r.md"
    _ok(CliRunner().invoke(report, [str(a), str(b), "--out", str(out), "--no-plots", *FAST]))
    md = out.read_text()
    assert (
        "SGC ± SD" in md and "(by scenario)" in md and "clustered by scenario (10 scenarios)" in md
    )


def test_report_airline_null_floor(tmp_path):
    from harness.data import dataset_dir

    source = Path(__file__).resolve().parents[2] / "shared" / "data" / "tau3-airline"
    source = source if (source / "tasks.json").is_file() else dataset_dir("tau3-airline")
    if not (source / "tasks.json").is_file():
        pytest.fail("τ³-airline data not found; run `make data`")
    df = tidy_table("m", rng=0, n_tasks=50, benchmark="tau3-airline", seeds=(0,))
    df["task_id"] = [str(i) for i in range(50)]
    run = _run_dir(tmp_path, "airline", df)
    out = tmp_path / "r.md"
    args = [str(run), "--out", str(out), "--no-plots", "--data-dir", str(source), *FAST]
    _ok(CliRunner().invoke(report, args))
    md = out.read_text()
    cmp = [str(run), str(run), "--json", "--data-dir", str(source), *FAST]
    assert json.loads(_ok(CliRunner().invoke(compare, cmp)))["null_floor"] == pytest.approx(0.46)
    assert (
        "- tau3-airline (airline): 0.460 (do-nothing agent's success rate on these 50 tasks)" in md
    )
    assert "null-agent floor of 0.460" in md


def test_cli_module_is_light():
    import subprocess
    import sys

    code = "import sys, reports.cli; print('pandas' in sys.modules, 'scipy' in sys.modules)"
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root)
    assert out.stdout.split() == ["False", "False"], out.stderr


def test_reports_never_import_the_trainer():
    """Layers flow one way: the reports read harness (and the files training wrote), never the
    trainer package; the credit audit's reader is reports/credit_audit.py."""
    import ast

    root = Path(__file__).resolve().parents[1] / "reports"
    for path in sorted(root.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            trainer = [n for n in names if n == "sgcd" or n.startswith("sgcd.")]
            assert not trainer, f"{path.name} imports {trainer}"
