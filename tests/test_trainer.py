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
