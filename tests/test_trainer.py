"""The trainer loop: outputs on disk, and a killed run that resumes from its last checkpoint."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from harness.policy import Policy


def test_killed_run_resumes_from_its_last_checkpoint(toy_tiny_dir, tmp_path):
    cfg = tmp_path / "grpo.toml"
    cfg.write_text("updates = 4\ngroups_per_update = 1\ngroup_size = 2\ndynamic_sampling = false\n"
                   "max_new_tokens = 8\nmax_steps = 4\nmax_errors = 2\ncheckpoint_every = 1\n")  # fmt: skip
    out = tmp_path / "run"
    cmd = [str(Path(sys.executable).parent / "sgcd-bench"), "train", "--algo", "grpo", "--benchmark", "toy",
           "--model", f"local/{toy_tiny_dir}", "--config", str(cfg), "--out", str(out)]  # fmt: skip
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpts = out / "train" / "checkpoints"
    deadline = time.time() + 240
    while not (ckpts / "step-2" / "trainer_state.json").exists() and time.time() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert (ckpts / "step-2").is_dir()
    subprocess.run(cmd, check=True, capture_output=True, timeout=300)
    rows = [json.loads(x) for x in (out / "train" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4]  # nothing lost, nothing twice
    manifest = json.loads((out / "train" / "manifest.json").read_text())
    assert manifest["resumed_from"] and "step-" in manifest["resumed_from"]
    assert not list(ckpts.glob(".step-*"))  # no half-written checkpoint left behind
    Policy.load(ckpts / "step-4")  # the final checkpoint loads as a Hugging Face folder
    for key in ("step", "groups_sampled", "groups_kept", "reward_mean", "success_rate", "loss", "kl",
                "entropy", "grad_norm", "clip_fraction", "policy_tokens", "seconds"):  # fmt: skip
        assert key in rows[-1], key
    assert (out / "train" / "config.toml").read_text().startswith("# budget")


def _toy_cfg(model_dir, **kw):
    from sgcd.trainer import TrainConfig

    base = dict(benchmark="toy", benchmark_args={"levels": "0"}, model=f"local/{model_dir}", updates=2,
                groups_per_update=1, group_size=2, dynamic_sampling=False, max_new_tokens=8, max_steps=4,
                max_errors=2, checkpoint_every=1, threads=1)  # fmt: skip
    return TrainConfig(**{**base, **kw})


def test_a_non_finite_loss_stops_the_run_naming_the_step_and_writes_no_checkpoint(toy_tiny_dir, tmp_path):
    """SGCD at temperature 0 (refused by its config today; forced here past the check, as the old
    code ran it) divides 0 by 0: it used to write an all-NaN checkpoint and exit 0."""
    import pytest
    import torch

    from sgcd.trainer import NonFiniteError, Trainer

    trainer = Trainer(_toy_cfg(toy_tiny_dir, algo="sgcd", algo_config={"provider": "zero"}), tmp_path)
    trainer.algo.cfg.temperature = 0.0
    before = [p.detach().clone() for p in trainer.policy.model.parameters()]
    with pytest.raises(NonFiniteError, match=r"^step 1: the sgcd loss is nan"):
        trainer.run(progress=False)
    assert not list((tmp_path / "train").glob("checkpoints/*"))
    assert not (tmp_path / "train" / "metrics.jsonl").exists()
    assert all(torch.equal(a, b) for a, b in zip(before, trainer.policy.model.parameters(), strict=True))


def test_a_non_finite_gradient_stops_the_run_before_the_optimizer_step(toy_tiny_dir, tmp_path):
    import pytest
    import torch

    from sgcd.trainer import NonFiniteError, Trainer

    trainer = Trainer(_toy_cfg(toy_tiny_dir), tmp_path)
    first = next(trainer.policy.model.parameters())
    first.register_hook(lambda g: g * float("inf"))
    before = first.detach().clone()
    with pytest.raises(NonFiniteError, match=r"^step 1: the gradient norm is (nan|inf)"):
        trainer.run(progress=False)
    assert torch.equal(first.detach(), before)
    assert not list((tmp_path / "train").glob("checkpoints/*"))


def test_resume_drops_a_torn_last_metrics_line_with_a_warning_naming_the_file(toy_tiny_dir, tmp_path):
    """A kill mid-write leaves half a line; resume used to fail with a JSON error naming no file."""
    import shutil

    import pytest

    from harness.jsonl import TornLineWarning
    from sgcd.trainer import Trainer

    cfg = _toy_cfg(toy_tiny_dir)
    Trainer(cfg, tmp_path).run(progress=False)
    metrics = tmp_path / "train" / "metrics.jsonl"
    lines = metrics.read_text().splitlines()
    metrics.write_text(lines[0] + "\n" + lines[1][: len(lines[1]) // 2])  # killed while writing step 2
    shutil.rmtree(tmp_path / "train" / "checkpoints" / "step-2")  # ... so step 2 never checkpointed
    with pytest.warns(TornLineWarning, match=rf"{metrics}: dropped a torn last line"):
        trainer = Trainer(cfg, tmp_path)
    assert trainer.start_step == 1
    trainer.run(progress=False)
    assert [json.loads(x)["step"] for x in metrics.read_text().splitlines()] == [1, 2]


def test_credit_cache_drops_a_torn_last_line_and_names_a_damaged_one(tmp_path):
    import pytest

    from harness.jsonl import JsonlError, TornLineWarning
    from sgcd.credit import ReferenceCache

    path = tmp_path / "credit" / "cache.jsonl"
    path.parent.mkdir()
    path.write_text('{"key": "a", "reference": null}\n{"key": "b", "refer')
    with pytest.warns(TornLineWarning, match=rf"{path}: dropped a torn last line"):
        cache = ReferenceCache(path)
    assert set(cache.entries) == {"a"}
    cache.put("c", {"reference": None})
    assert [json.loads(x)["key"] for x in path.read_text().splitlines()] == ["a", "c"]  # the next append is whole
    path.write_text('{"key": "a"}\nnot json\n{"key": "c"}\n')
    with pytest.raises(JsonlError, match=rf"{path}:2 is not a JSON object"):
        ReferenceCache(path)
