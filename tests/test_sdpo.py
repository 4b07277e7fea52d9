"""SDPO: divergence endpoints by hand, top-k + tail buckets, a detached teacher on the student's
own tokens, reprompts and exclusions, λ = 0 equal to GRPO, the EMA step, and a trainer run."""

from __future__ import annotations

import asyncio
import json
import math

import pytest
import torch

from baselines.sdpo import (
    SDPO,
    demonstrations,
    generalized_jsd,
    render_solution,
    reprompt_text,
    topk_tail,
)
from harness.loop import Reply, run_episode
from harness.records import Message, ToolCall
from harness.toolcalls import to_template_messages
from harness.toy import Toy, scripted_messages
from harness.toy.episode import SYSTEM_PROMPT, TOOLS
from sgcd.algorithms import AlgoContext, get_algorithm, weigh
from sgcd.losses import PGConfig
from sgcd.tokens import collate, segments_from_turns, token_logprobs

BENCH = Toy()


# ---------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    from harness.tiny_model import build_tiny_model

    torch.set_num_threads(2)
    tids = ["L1-0000", "L2-0000", "L3-0000"]
    texts = [m.content or "" for t in tids for m in scripted_messages(t)]
    corpus = [
        SYSTEM_PROMPT,
        json.dumps(TOOLS),
        *texts,
        "Correct: submitted answer lookup key value",
    ] * 3
    return build_tiny_model(
        tmp_path_factory.mktemp("sdpo") / "model", corpus, vocab_size=512, hidden=32
    )


@pytest.fixture(scope="module")
def policy(tiny_dir):
    from harness.policy import Policy

    return Policy.load(tiny_dir, threads=2)


class TraceAgent:
    """Replays fixed assistant turns through the real loop, with the token trace a rollout has:
    the Policy's rendered prompt and the rendered reply's ids plus <|im_end|>."""

    def __init__(self, policy, turns: list[Message]):
        self.policy, self.turns = policy, list(turns)

    async def __call__(self, system_prompt, tools, messages) -> Reply:
        m = self.turns.pop(0) if self.turns else Message(role="assistant", content="Done.")
        tok = self.policy.tokenizer
        content = to_template_messages("", [], [m])[1]["content"]
        ids = tok.encode(content, add_special_tokens=False) + [
            tok.convert_tokens_to_ids("<|im_end|>")
        ]
        trace = {
            "prompt_ids": self.policy.render(system_prompt, tools, messages),
            "completion_ids": ids,
        }
        return Reply(message=m, trace=trace)


def play(policy, tid: str, turns: list[Message]):
    return asyncio.run(run_episode(lambda: BENCH.episode(tid), TraceAgent(policy, turns), None))


def call(turn: int, name: str, args: dict) -> Message:
    return Message(role="assistant", tool_calls=[ToolCall(f"call_{turn}_0", name, args)])


def make_batch(groups):
    """A TokenBatch exactly as the trainer builds one (sgcd/trainer.py rollout_batch)."""
    segments, gids, rewards, success, meta = [], [], [], [], []
    for g, (tid, results) in enumerate(groups):
        for res in results:
            traj = len(rewards)
            segments += segments_from_turns(
                [(t["prompt_ids"], t["completion_ids"]) for t in res.traces], traj
            )
            gids.append(g)
            rewards.append(res.outcome.reward)
            success.append(res.outcome.success)
            meta.append({"task_id": tid, "result": res})
    return collate(segments, gids, rewards, success, 0, meta)


@pytest.fixture()
def batch(policy):
    """Group 0 (L1-0000): two scripted successes and a wrong submit; group 1 (L2-0000): two
    failures. Every trajectory has several agent turns and the toy scorer's feedback."""
    good = [m for m in scripted_messages("L1-0000") if m.role == "assistant"]
    wrong = [call(1, "lookup", {"key": "rat"}), call(2, "submit", {"answer": 5})]
    g0 = [
        play(policy, "L1-0000", good),
        play(policy, "L1-0000", good),
        play(policy, "L1-0000", wrong),
    ]
    g1 = [
        play(policy, "L2-0000", [call(1, "submit", {"answer": 1})]),
        play(policy, "L2-0000", wrong),
    ]
    assert [r.outcome.success for r in g0 + g1] == [True, True, False, False, False]
    assert all(r.outcome.feedback for r in g0 + g1)
    return make_batch([("L1-0000", g0), ("L2-0000", g1)])


@pytest.fixture()
def old_logp(policy, batch):
    """log π_old of the batch, as the trainer hands it to prepare and loss."""
    with torch.no_grad():
        return token_logprobs(policy.model, batch.input_ids, batch.attention_mask)


def make_algo(policy, tmp_path, **cfg):
    return SDPO(SDPO.Config(**cfg), AlgoContext(policy, tmp_path, PGConfig()))


def loss_of(algo, batch, logp, old, adv, rows, work=None, logits=None):
    """A micro-batch's loss as the trainer takes it: the algorithm's terms, weighed by the
    trainer's one rule (sgcd/algorithms.py weigh); metrics with each named term's part."""
    terms, st = algo.loss(batch, logp, old, None, adv, rows, logits=logits, work=work)
    loss, parts = weigh(terms, batch, rows)
    return loss, {**st, **parts}


def traj_tokens(batch, trajs) -> float:
    return float(sum(batch.loss_mask[batch.row_traj == t].sum() for t in trajs))


# ---------------------------------------------------------------------- the math


def test_divergence_endpoints_by_hand():
    s, t = [0.5, 0.3, 0.2], [0.2, 0.2, 0.6]
    S, T = torch.log(torch.tensor([s])), torch.log(torch.tensor([t]))

    def kl(p, q):
        return sum(a * math.log(a / b) for a, b in zip(p, q, strict=True))

    m = [(a + b) / 2 for a, b in zip(s, t, strict=True)]
    assert float(generalized_jsd(S, T, 0.0)) == pytest.approx(kl(t, s), rel=1e-6)  # forward KL(T‖S)
    assert float(generalized_jsd(S, T, 1.0)) == pytest.approx(kl(s, t), rel=1e-6)  # reverse KL(S‖T)
    assert float(generalized_jsd(S, T, 0.5)) == pytest.approx(
        0.5 * kl(t, m) + 0.5 * kl(s, m), rel=1e-6
    )
    a = 0.3
    ma = [a * y + (1 - a) * x for x, y in zip(s, t, strict=True)]
    assert float(generalized_jsd(S, T, a)) == pytest.approx(
        (1 - a) * kl(t, ma) + a * kl(s, ma), rel=1e-6
    )
    # continuous at both ends, zero on equal distributions
    assert float(generalized_jsd(S, T, 1e-6)) == pytest.approx(kl(t, s), rel=1e-4)
    assert float(generalized_jsd(S, T, 1 - 1e-6)) == pytest.approx(kl(s, t), rel=1e-4)
    assert float(generalized_jsd(S, S, 0.5)) == pytest.approx(0.0, abs=1e-7)


def test_topk_plus_tail_buckets_sum_to_one():
    torch.manual_seed(0)
    logp = torch.log_softmax(torch.randn(6, 40) * 3, -1)
    for k in (1, 5, 39):
        ids = logp.topk(k, -1).indices
        b = topk_tail(logp, ids)
        assert b.shape == (6, k + 1)
        assert b.exp().sum(-1).tolist() == pytest.approx([1.0] * 6, abs=1e-6)
        assert torch.equal(b[:, :k], logp.gather(-1, ids))
        rest = 1 - logp.gather(-1, ids).exp().sum(-1)
        assert b[:, -1].exp().tolist() == pytest.approx(rest.tolist(), abs=1e-6)


def test_no_gradient_flows_to_the_teacher():
    s = torch.log_softmax(torch.randn(4, 6), -1).requires_grad_(True)
    t = torch.log_softmax(torch.randn(4, 6), -1).requires_grad_(True)
    for alpha in (0.0, 0.5, 1.0):
        s.grad = None
        generalized_jsd(s, t, alpha).sum().backward()
        assert t.grad is None and s.grad is not None and s.grad.abs().sum() > 0


# ---------------------------------------------------------------------- reprompts


def test_demonstrations_pick_a_different_successful_sibling():
    g = torch.tensor([0, 0, 0, 1, 1, 2, 2])
    ok = torch.tensor([True, True, False, False, False, True, False])
    assert demonstrations(g, ok) == [1, 0, 0, None, None, None, 5]


def test_reprompt_text_in_one_place(batch):
    sol = render_solution(batch.meta[0]["result"])
    assert sol.startswith("Step 1: <tool_call>") and '"submit"' in sol and "Step 3" not in sol
    assert reprompt_text("SYS", "", "") is None
    both = reprompt_text("SYS", sol, "you were wrong")
    assert both.startswith("SYS\n\n") and sol in both and "you were wrong" in both
    assert sol not in reprompt_text("SYS", "", "fb") and "fb" not in reprompt_text("SYS", sol, "")


# ---------------------------------------------------------------------- the algorithm


def test_teacher_scores_the_students_own_tokens(policy, batch, old_logp, tmp_path):
    algo = make_algo(policy, tmp_path, teacher="live")
    work, st = algo.prepare(batch, old_logp)
    rows = work.teacher_rows
    i = rows.index
    assert len(i) == batch.num_policy_tokens  # every policy token is aligned
    assert torch.equal(rows.batch.input_ids[i[:, 2], i[:, 3]], batch.input_ids[i[:, 0], i[:, 1]])
    assert rows.batch.input_ids.shape[1] > batch.input_ids.shape[1]  # a longer, reprompted prefix
    text = policy.tokenizer.decode(rows.batch.input_ids[2].tolist())
    assert "correct solution" in text and "Feedback from the environment" in text
    assert st["sdpo_excluded_trajs"] == 0 and st["distill_tokens"] == batch.num_policy_tokens
    assert 0 < st["teacher_topk_mass"] <= 1
    t = work.teacher[batch.loss_mask > 0]
    assert not t.requires_grad and t.exp().sum(-1).tolist() == pytest.approx(
        [1.0] * len(t), abs=1e-5
    )


def test_trajectories_without_demonstration_or_feedback_are_excluded(policy, batch, old_logp, tmp_path):
    algo = make_algo(policy, tmp_path, reprompt="solution")  # group 1 has no success to show
    work, st = algo.prepare(batch, old_logp)
    assert st["sdpo_excluded_trajs"] == 2
    assert st["distill_tokens"] == traj_tokens(batch, [0, 1, 2])
    assert work.mask[batch.row_traj >= 3].sum() == 0
    assert work.teacher[batch.row_traj >= 3].abs().sum() == 0
    batch.meta[2]["result"].outcome.feedback = ""
    _, st = make_algo(policy, tmp_path, reprompt="feedback").prepare(batch, old_logp)
    assert st["sdpo_excluded_trajs"] == 1 and st["distill_tokens"] == traj_tokens(
        batch, [0, 1, 3, 4]
    )
    # nothing left to distill: the loss is a zero that still backpropagates
    for r in batch.meta:
        r["result"].outcome.feedback = ""
    algo = make_algo(policy, tmp_path, reprompt="feedback")
    work, st = algo.prepare(batch, old_logp)
    assert st["sdpo_excluded_trajs"] == 5
    logp = token_logprobs(policy.model, batch.input_ids, batch.attention_mask)
    rows = torch.arange(len(batch.segments))
    loss, st = loss_of(algo, batch, logp, old_logp, torch.zeros_like(logp), rows, work)
    loss.backward()
    assert loss.item() == 0.0 and st["distill_loss"] == 0.0
    policy.model.zero_grad(set_to_none=True)


def test_distill_loss_is_the_token_mean_over_eligible_tokens(policy, batch, old_logp, tmp_path):
    algo = make_algo(policy, tmp_path, reprompt="solution", alpha=0.5, teacher="live")
    work, _ = algo.prepare(batch, old_logp)
    rows = torch.arange(len(batch.segments))
    old, zeros = old_logp, torch.zeros_like(old_logp)
    with torch.no_grad():  # no capture here: the loss runs its own student pass
        loss, st = loss_of(algo, batch, old, old, zeros, rows, work)
        logits = policy.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
        # ρ = clip(π_θ / π_old, 0.8, 1.2) scales each token's divergence, detached
        up, _ = loss_of(algo, batch, old + 0.5 * batch.loss_mask, old, zeros, rows, work)
        down, _ = loss_of(algo, batch, old - 0.5 * batch.loss_mask, old, zeros, rows, work)
    r, p = work.mask.nonzero().unbind(-1)
    s = topk_tail(logits[r, p - 1].log_softmax(-1), work.ids[r, p].long())
    expected = generalized_jsd(s, work.teacher[r, p], 0.5).mean()  # ρ = 1 at θ = θ_old
    # rel 1e-3: the loss's student pass runs the rows' shared prompt once (sgcd/tokens.py), so its
    # logits differ from this plain pass by float rounding, and the divergence here is ~1e-7.
    assert float(loss) == pytest.approx(float(expected), rel=1e-3) and st["distill_loss"] == float(loss)
    assert float(loss) > 0
    assert float(up) == pytest.approx(1.2 * float(loss), rel=1e-5)
    assert float(down) == pytest.approx(0.8 * float(loss), rel=1e-5)
    # micro-batches weighed as the trainer weighs them (and nothing else) add up to the same
    # batch loss: the distillation term is not scaled by the algorithm for the micro-batch
    total = 0.0
    with torch.no_grad():
        for c in rows.split(2):
            lc, _ = loss_of(algo, batch, old[c], old[c], zeros[c], c, work)
            total += float(lc)
    assert total == pytest.approx(float(loss), rel=1e-3)  # rounding, as above


def test_student_logits_come_from_the_trainers_pass_with_gradient(policy, batch, old_logp, tmp_path):
    algo = make_algo(policy, tmp_path)  # EMA teacher
    work, _ = algo.prepare(batch, old_logp)
    rows = torch.arange(2)
    policy.model.zero_grad(set_to_none=True)
    logp, logits = token_logprobs(policy.model, batch.input_ids[rows], batch.attention_mask[rows],
                                  batch.loss_mask[rows], return_logits=True)  # as the trainer calls it
    assert logits.requires_grad and logits.shape[0] == int(batch.loss_mask[rows].sum())
    loss, st = loss_of(algo, batch, logp, old_logp[rows], torch.zeros_like(logp), rows, work, logits=logits)
    loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in policy.model.parameters())
    assert all(p.grad is None for p in algo.teacher_model.parameters())
    assert not work.teacher.requires_grad
    with torch.no_grad():  # the fallback pass gives the same value
        again, _ = loss_of(algo, batch, logp.detach(), old_logp[rows], torch.zeros_like(logp), rows, work)
    assert float(again) == pytest.approx(loss.item(), rel=1e-5)
    policy.model.zero_grad(set_to_none=True)


def test_distillation_moves_the_student_towards_the_teacher(policy, batch, old_logp, tmp_path):
    import copy

    from harness.policy import Policy

    student = Policy(copy.deepcopy(policy.model), policy.tokenizer)  # train a copy
    algo = SDPO(
        SDPO.Config(teacher="ema", ema_rate=0.0, alpha=0.5),
        AlgoContext(student, tmp_path, PGConfig()),
    )
    work, _ = algo.prepare(batch, old_logp)
    opt = torch.optim.SGD(student.model.parameters(), lr=0.5)
    rows = torch.arange(len(batch.segments))
    losses = []
    for _ in range(4):
        opt.zero_grad()
        logp = token_logprobs(student.model, batch.input_ids, batch.attention_mask)
        loss, _ = loss_of(algo, batch, logp, logp.detach(), torch.zeros_like(logp), rows, work)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


def test_lambda_zero_is_exactly_grpo(policy, batch, old_logp, tmp_path):
    assert get_algorithm("sdpo") is SDPO
    grpo_cls = get_algorithm("grpo")
    grpo = grpo_cls(grpo_cls.Config(), AlgoContext(policy, tmp_path, PGConfig()))
    algo = make_algo(policy, tmp_path, distill_weight=0.0)
    work, st = algo.prepare(batch, old_logp)
    assert "teacher_topk_mass" not in st and algo.teacher_model is None  # no teacher when unused
    traj_adv = torch.tensor([1.0, 1.0, -1.0, 0.5, -0.5])
    adv, _ = grpo.token_advantages(batch, traj_adv)
    assert torch.equal(algo.token_advantages(batch, traj_adv, work)[0], adv)
    logp = old_logp + 0.1 * batch.loss_mask
    rows = torch.arange(len(batch.segments))
    ref, _ = loss_of(grpo, batch, logp, old_logp, adv, rows)
    got, st = loss_of(algo, batch, logp, old_logp, adv, rows, work)
    assert torch.equal(got, ref) and st["pg_loss"] == float(ref)
    # and an intermediate λ is the convex mix
    mix = make_algo(policy, tmp_path, distill_weight=0.25, teacher="live")
    work, _ = mix.prepare(batch, old_logp)
    with torch.no_grad():
        lm, sm = loss_of(mix, batch, logp, old_logp, adv, rows, work)
    assert float(lm) == pytest.approx(0.75 * sm["pg_loss"] + 0.25 * sm["distill_loss"], rel=1e-5)


def test_ema_teacher_moves_by_tau_at_the_start_of_prepare(policy, batch, old_logp, tmp_path):
    algo = make_algo(policy, tmp_path, teacher="ema", ema_rate=0.1)
    p = next(policy.model.parameters())
    pt = next(algo.teacher_model.parameters())
    before = p.detach().clone()
    assert torch.equal(pt, before) and not pt.requires_grad
    algo.prepare(batch, old_logp)
    assert torch.equal(pt, before)  # θ_T = θ: the first step changes nothing
    with torch.no_grad():
        p.add_(1.0)
    try:
        algo.prepare(batch, old_logp)
        assert torch.allclose(pt, before + 0.1, atol=1e-6)
    finally:
        with torch.no_grad():
            p.sub_(1.0)
    with pytest.raises(ValueError, match="teacher"):
        make_algo(policy, tmp_path, teacher="frozen")
    with pytest.raises(ValueError, match="reprompt"):
        make_algo(policy, tmp_path, reprompt="hints")


def test_trainer_runs_sdpo_end_to_end(tiny_dir, tmp_path):
    from sgcd.trainer import TrainConfig, Trainer

    cfg = TrainConfig(
        algo="sdpo", benchmark="toy", model=f"local/{tiny_dir}", updates=2, groups_per_update=1,
        group_size=4, dynamic_sampling=False, max_new_tokens=16, max_steps=4,
    )  # fmt: skip
    rows = Trainer(cfg, tmp_path).run(progress=False)
    assert len(rows) == 2
    saved = [json.loads(x) for x in (tmp_path / "train" / "metrics.jsonl").read_text().splitlines()]
    for row in saved:
        for key in (
            "distill_loss",
            "pg_loss",
            "distill_tokens",
            "sdpo_excluded_trajs",
            "teacher_topk_mass",
        ):
            assert key in row and math.isfinite(row[key]), key
        assert row["sdpo_excluded_trajs"] == 0  # every toy outcome has feedback
        assert row["distill_tokens"] == row["policy_tokens"]
        assert row["loss"] == pytest.approx(row["distill_loss"], rel=1e-4)  # λ = 1: pure SDPO
    assert (tmp_path / "train" / "checkpoints" / "step-2" / "config.json").is_file()
