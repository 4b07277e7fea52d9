"""SGCD's pure pieces by hand: credit weights (bounds, normalization over a trajectory's rows, the
abs form, zero divergence) and parsing of the credit reference. The teacher pass, the zero
control, provider fallbacks and the cache run on real rollouts in test_sgcd_integration.py."""

from __future__ import annotations

import pytest
import torch

from sgcd.credit import CreditParseError, parse_reference, render_reference
from sgcd.method import credit_weights, teacher_system


def test_weights_normalized_then_clipped_per_trajectory():
    d = torch.tensor([[0.0, 1.0, -1.0, 0.0], [2.0, 0.0, 0.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0], [1.0, 1.0, 0.0, 0.0]])
    adv = torch.tensor([1.0, -1.0])
    traj = torch.tensor([0, 1])
    w = credit_weights(d, mask, adv, traj, temperature=1.0, w_min=0.0, w_max=100.0)
    e = torch.exp(torch.tensor([0.0, 1.0, -1.0]))
    assert w[0, :3].tolist() == pytest.approx((e / e.mean()).tolist(), rel=1e-6)
    e2 = torch.exp(torch.tensor([-2.0, 0.0]))  # sign(A) = -1 flips the divergence
    assert w[1, :2].tolist() == pytest.approx((e2 / e2.mean()).tolist(), rel=1e-6)
    assert w[0, 3] == 0 and w[1, 2:].abs().sum() == 0
    clipped = credit_weights(d, mask, adv, traj, w_min=0.5, w_max=2.0)
    on = clipped[mask > 0]
    assert on.min() >= 0.5 and on.max() <= 2.0


def test_weights_normalize_over_all_rows_of_a_trajectory():
    d = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    mask = torch.ones(2, 2)
    w = credit_weights(d, mask, torch.tensor([1.0, 1.0]), torch.tensor([0, 0]), w_min=0.0, w_max=100.0)
    assert float(w.mean()) == pytest.approx(1.0)


def test_abs_form_and_zero_divergence():
    d = torch.zeros(1, 3)
    w = credit_weights(d, torch.ones(1, 3), torch.tensor([-1.0]), torch.tensor([0]))
    assert torch.equal(w, torch.ones(1, 3))
    w = credit_weights(torch.tensor([[-1.0, 1.0]]), torch.ones(1, 2), torch.tensor([1.0]), torch.tensor([0]),
                       form="abs", w_min=0.0, w_max=9.0)  # fmt: skip
    assert w[0, 0] == pytest.approx(w[0, 1])


def test_parse_reference_validates_and_teacher_text_is_in_one_place():
    text = 'sure: {"summary": "look before you submit", "steps": [{"trajectory": 1, "turn": 0, "credit": -0.5, "why": "guessed"}]}'
    ref = parse_reference(text, 2, [2, 1])
    assert ref.steps == [{"trajectory": 1, "turn": 0, "credit": -0.5, "why": "guessed"}]
    for bad in ("no json", '{"steps": [{"trajectory": 5, "turn": 0, "credit": 0}]}',
                '{"steps": [{"trajectory": 0, "turn": 0, "credit": 3}]}', '{"summary": "x"}'):  # fmt: skip
        with pytest.raises(CreditParseError):
            parse_reference(bad, 2, [2, 1])
    shown = render_reference(ref, 1)
    assert "credit -0.50" in shown and "look before you submit" in shown
    assert teacher_system("SYS", "") == "SYS"
    assert teacher_system("SYS", shown) == "SYS\n\n" + shown
