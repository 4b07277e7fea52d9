"""SGCD on real toy rollouts of a tiny model: the teacher pass, the zero control, providers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from credit_server import CreditServer

from baselines.grpo import GRPO
from sgcd.advantages import compute_advantages
from sgcd.algorithms import weigh
from sgcd.tokens import token_logprobs
from sgcd.trainer import TrainConfig, Trainer


def _trainer(tmp_path, tiny, provider: str, **algo) -> Trainer:
    cfg = TrainConfig(algo="sgcd", benchmark="toy", model=f"local/{tiny}", updates=1, groups_per_update=2,
                      group_size=3, dynamic_sampling=False, max_new_tokens=16, max_steps=4, max_errors=2,
                      algo_config={"provider": provider, **algo})  # fmt: skip
    return Trainer(cfg, tmp_path / "run")


def _mixed_batch(tr: Trainer):
    """A batch of the trainer's rollouts with a success per group, and its log π_old."""
    batch, _ = tr.rollout_batch(1)
    # The random tiny model never succeeds; give each group a success so advantages are non-zero
    # (the algorithm's math is under test here, not the policy's skill).
    succ = [i % 3 == 0 for i in range(len(batch.rewards))]
    batch.success = torch.tensor(succ)
    batch.rewards = batch.success.float()
    for t, s in enumerate(succ):
        batch.meta[t]["result"].outcome.success = s
    with torch.no_grad():
        old_logp = token_logprobs(tr.policy.model, batch.input_ids, batch.attention_mask)
    return batch, old_logp


def _losses(tr, batch, old_logp, algo, work=None):
    adv = compute_advantages("grpo", batch.rewards, batch.group_ids)
    adv_tok, _ = algo.token_advantages(batch, adv, work)
    rows = torch.arange(batch.input_ids.shape[0])
    logp = token_logprobs(tr.policy.model, batch.input_ids, batch.attention_mask)
    terms, _ = algo.loss(batch, logp, old_logp, None, adv_tok, rows, work=work)
    loss, _ = weigh(terms, batch, rows)  # one micro-batch: the whole batch
    return loss, logp, adv_tok


def test_zero_control_runs_a_real_teacher_pass_and_equals_grpo(tmp_path, toy_tiny_dir):
    tr = _trainer(tmp_path, toy_tiny_dir, "zero")
    batch, old_logp = _mixed_batch(tr)
    work, stats = tr.algo.prepare(batch, old_logp)
    rows = work.teacher_rows
    assert torch.equal(rows.batch.input_ids, batch.input_ids)  # identical prompts, re-rendered
    assert stats["credit_groups"] == 2 and stats["teacher_d_abs_mean"] < 1e-6
    l_sgcd, _, _ = _losses(tr, batch, old_logp, tr.algo, work)
    l_grpo, _, _ = _losses(tr, batch, old_logp, GRPO(GRPO.Config(), tr.algo.ctx))
    assert abs(l_sgcd.item() - l_grpo.item()) < 1e-6
    assert l_grpo.item() != 0.0


def test_teacher_scores_the_students_own_tokens_and_passes_no_gradient(tmp_path, toy_tiny_dir, monkeypatch):
    with CreditServer("good") as srv:
        monkeypatch.setenv("SGCD_CREDIT_BASE_URL", srv.base_url)
        monkeypatch.setenv("SGCD_CREDIT_MODEL", "credit")
        monkeypatch.setenv("SGCD_CREDIT_API_KEY", "k")
        tr = _trainer(tmp_path, toy_tiny_dir, "openai", w_min=0.1, w_max=10.0)
        batch, old_logp = _mixed_batch(tr)
        work, stats = tr.algo.prepare(batch, old_logp)
    assert stats["credit_parsed"] == 2 and srv.calls == 2
    rows = work.teacher_rows
    i = rows.index
    assert rows.batch.input_ids.shape[1] > batch.input_ids.shape[1]  # the reference is in the prompt
    assert torch.equal(rows.batch.input_ids[i[:, 2], i[:, 3]], batch.input_ids[i[:, 0], i[:, 1]])
    assert len(i) == batch.num_policy_tokens
    loss, logp, adv_tok = _losses(tr, batch, old_logp, tr.algo, work)
    w = tr.algo.weights(batch, compute_advantages("grpo", batch.rewards, batch.group_ids), work)  # token_advantages' w
    assert not w.requires_grad and not adv_tok.requires_grad and not work.d.requires_grad
    assert float(w[batch.loss_mask > 0].std()) > 0  # the teacher really moved the weights
    # The only gradient path is through logp: dL/dlogp_t = -A_i w_t r_t / N inside the clip range.
    (grad,) = torch.autograd.grad(loss, logp)
    ratio = torch.exp(logp.detach() - old_logp)
    expected = -adv_tok * ratio * batch.loss_mask / batch.loss_mask.sum()
    assert torch.allclose(grad, expected, atol=1e-6)


@pytest.mark.parametrize("mode", ["bad", "flaky"])
def test_unparsable_answers_retry_once_then_fall_back_to_zero(tmp_path, toy_tiny_dir, monkeypatch, mode):
    with CreditServer(mode) as srv:
        monkeypatch.setenv("SGCD_CREDIT_BASE_URL", srv.base_url)
        monkeypatch.setenv("SGCD_CREDIT_MODEL", "credit")
        tr = _trainer(tmp_path, toy_tiny_dir, "openai")
        batch, old_logp = _mixed_batch(tr)
        work, stats = tr.algo.prepare(batch, old_logp)
    records = work.records
    if mode == "bad":
        assert srv.calls == 4 and stats["credit_fallbacks"] == 2  # two tries per group
        assert all(r["reference"] is None and "unparsable" in r["error"] for r in records)
        assert torch.equal(work.teacher_rows.batch.input_ids, batch.input_ids)  # zero prompt
    else:
        assert stats["credit_parsed"] == 2 and all(r["attempts"] == 2 for r in records)


def test_references_are_cached_across_instances(tmp_path, toy_tiny_dir, monkeypatch):
    with CreditServer("good") as srv:
        monkeypatch.setenv("SGCD_CREDIT_BASE_URL", srv.base_url)
        monkeypatch.setenv("SGCD_CREDIT_MODEL", "credit")
        tr = _trainer(tmp_path, toy_tiny_dir, "openai")
        batch, old_logp = _mixed_batch(tr)
        tr.algo.prepare(batch, old_logp)
        calls = srv.calls
        again = type(tr.algo)(tr.algo.cfg, tr.algo.ctx)  # as after a resume: reads the cache file
        work, _ = again.prepare(batch, old_logp)
    assert srv.calls == calls and all(r["cached"] for r in work.records)


def test_train_cli_end_to_end_with_a_scripted_credit_server(tmp_path, toy_tiny_dir, monkeypatch):
    from harness.cli import main

    cfg = tmp_path / "sgcd.toml"
    cfg.write_text(
        "updates = 2\ngroups_per_update = 1\ngroup_size = 3\ndynamic_sampling = false\nmax_new_tokens = 16\n"
        'max_steps = 4\nmax_errors = 2\ncheckpoint_every = 1\n[algo]\nprovider = "openai"\n'
    )
    with CreditServer("good") as srv:
        monkeypatch.setenv("SGCD_CREDIT_BASE_URL", srv.base_url)
        monkeypatch.setenv("SGCD_CREDIT_MODEL", "credit")
        monkeypatch.setenv("SGCD_CREDIT_API_KEY", "secret-key-never-written")
        out = tmp_path / "run"
        result = CliRunner().invoke(main, ["train", "--algo", "sgcd", "--benchmark", "toy", "--model",
                                           f"local/{toy_tiny_dir}", "--config", str(cfg), "--out", str(out)])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert srv.auth and all(a == "Bearer secret-key-never-written" for a in srv.auth)
    train = out / "train"
    rows = [json.loads(x) for x in (train / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2] and all("credit_groups" in r for r in rows)
    audit = json.loads((train / "credit" / "step-2.json").read_text())
    assert audit["groups"] and "weights" in audit
    for path in Path(out).rglob("*"):
        if path.is_file() and path.suffix in (".json", ".jsonl", ".toml", ".txt"):
            assert "secret-key-never-written" not in path.read_text(errors="ignore"), path
    assert (train / "checkpoints" / "step-2" / "config.json").is_file()


def test_guided_local_provider_always_parses_and_reaches_the_teacher(tmp_path, toy_tiny_dir):
    """`guided/PATH`: even a random tiny model yields a reference with one credit per agent turn,
    each one of the offered options, and the teacher prompt carries it."""
    from sgcd.credit import GuidedLocalProvider

    tr = _trainer(tmp_path, toy_tiny_dir, f"guided/{toy_tiny_dir}", provider_max_tokens=8)
    batch, old_logp = _mixed_batch(tr)
    work, stats = tr.algo.prepare(batch, old_logp)
    assert stats["credit_groups"] == 2 and stats["credit_parsed"] == 2 and stats["credit_fallbacks"] == 0
    for rec in work.records:
        assert rec["error"] is None and rec["provider"] == f"guided/{toy_tiny_dir}"
        turns = [len(batch.meta[t]["result"].traces) for t in rec["trajectories"]]
        steps = rec["reference"]["steps"]
        assert sorted((s["trajectory"], s["turn"]) for s in steps) == [(i, k) for i, n in enumerate(turns) for k in range(n)]
        assert {s["credit"] for s in steps} <= {-1.0, -0.5, 0.0, 0.5, 1.0}
    assert GuidedLocalProvider.CREDIT_CHOICES == ("-1", "-0.5", "0", "0.5", "1")
    rows = work.teacher_rows.batch
    assert rows.input_ids.shape[1] > batch.input_ids.shape[1]  # the reference is in the teacher's prompt
    assert stats["teacher_d_abs_mean"] > 0


def test_score_continuations_equals_a_plain_forward(toy_tiny_dir):
    from harness.policy import Policy

    policy = Policy.load(toy_tiny_dir, threads=2)
    prefix = policy.tokenizer.encode("Look up the light, then submit", add_special_tokens=False) * 3
    options = [policy.tokenizer.encode(x, add_special_tokens=False) for x in (" 1}", " -0.5}", " gold")]
    got = policy.score_continuations(prefix, options)
    again = policy.score_continuations(prefix, options)  # now from the cached prefix
    with torch.no_grad():
        for opt, g, a in zip(options, got, again, strict=True):
            ids = torch.tensor([prefix + opt])
            logp = policy.model(input_ids=ids).logits.log_softmax(-1)[0]
            want = sum(float(logp[len(prefix) - 1 + k, t]) for k, t in enumerate(opt))
            assert g == pytest.approx(want, abs=1e-4) and a == pytest.approx(want, abs=1e-4)
