"""Losses against hand-computed numbers."""
from __future__ import annotations

import math

import pytest
import torch

from training.losses import SoftTargetCrossEntropyLoss, WithinQueryMarginMSELoss, WithinQueryRankNetLoss


def test_margin_mse_matches_hand_computation():
    # query 0: rows 0,1,2; query 1: rows 3,4; query 2: row 5 alone (no pair)
    s = torch.tensor([1.0, 0.0, 2.0, 0.5, 0.5, 9.0])
    t = torch.tensor([2.0, 0.0, 0.0, 1.0, 0.0, -9.0])
    g = torch.tensor([7, 7, 7, 3, 3, 5])
    # q0 pairs: (0,1): (1-0)-(2-0) = -1 -> 1; (0,2): (1-2)-(2-0) = -3 -> 9; (1,2): (0-2)-(0-0) = -2 -> 4; mean 14/3
    # q1 pair: (3,4): (0)-(1) = -1 -> 1
    expected = (14 / 3 + 1) / 2
    assert WithinQueryMarginMSELoss()(s, t, g).item() == pytest.approx(expected)


def test_margin_mse_ignores_score_offsets_and_has_gradients():
    s = torch.tensor([0.3, -0.2, 1.0], requires_grad=True)
    t = torch.tensor([10.3, 9.8, 11.0])  # same margins, shifted by 10
    loss = WithinQueryMarginMSELoss()(s, t, torch.zeros(3, dtype=torch.long))
    assert loss.item() == pytest.approx(0.0, abs=1e-6)
    WithinQueryMarginMSELoss()(s, torch.zeros(3), torch.zeros(3, dtype=torch.long)).backward()
    assert s.grad is not None and s.grad.abs().sum() > 0


def test_margin_mse_without_pairs_is_zero():
    loss = WithinQueryMarginMSELoss()(torch.tensor([1.0, 2.0]), torch.tensor([0.0, 5.0]), torch.tensor([0, 1]))
    assert loss.item() == 0.0


def test_soft_target_cross_entropy_multiclass_by_hand():
    logits = torch.tensor([[0.0, math.log(3.0)]])  # softmax = [0.25, 0.75]
    targets = torch.tensor([[0.5, 0.5]])
    expected = -(0.5 * math.log(0.25) + 0.5 * math.log(0.75))
    assert SoftTargetCrossEntropyLoss()(logits, targets).item() == pytest.approx(expected)


def test_soft_target_cross_entropy_binary_by_hand():
    logits = torch.tensor([0.0, math.log(4.0)])  # sigmoid = 0.5, 0.8
    targets = torch.tensor([0.25, 1.0])
    expected = (-(0.25 * math.log(0.5) + 0.75 * math.log(0.5)) - math.log(0.8)) / 2
    assert SoftTargetCrossEntropyLoss()(logits, targets).item() == pytest.approx(expected)


def test_ranknet_with_soft_pair_targets_by_hand():
    # query 4: rows 0,1 (labels 1.0, 0.5 -> P(0 above 1) = 0.75); query 9: rows 2,3 (equal labels -> 0.5); row 4 alone
    s = torch.tensor([math.log(3.0), 0.0, 0.0, 0.0, 5.0])  # sigmoid(s0 - s1) = 0.75, sigmoid(0) = 0.5
    y = torch.tensor([1.0, 0.5, 0.2, 0.2, 1.0])
    g = torch.tensor([4, 4, 9, 9, 1])
    q4 = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    q9 = math.log(2.0)
    assert WithinQueryRankNetLoss()(s, y, g).item() == pytest.approx((q4 + q9) / 2)


def test_ranknet_pushes_the_better_product_up_and_ignores_offsets():
    s = torch.tensor([0.0, 0.0], requires_grad=True)
    WithinQueryRankNetLoss()(s, torch.tensor([1.0, 0.0]), torch.zeros(2, dtype=torch.long)).backward()
    assert s.grad[0] < 0 < s.grad[1]  # descending the loss raises row 0 and lowers row 1
    a = WithinQueryRankNetLoss()(torch.tensor([0.2, 1.0]), torch.tensor([0.3, 0.9]), torch.zeros(2, dtype=torch.long))
    b = WithinQueryRankNetLoss()(torch.tensor([5.2, 6.0]), torch.tensor([0.3, 0.9]), torch.zeros(2, dtype=torch.long))
    assert a.item() == pytest.approx(b.item())
