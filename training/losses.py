"""Distillation losses as pure tensor modules (no model, no tokenizer inside).

References: Shang et al., "Knowledge Distillation for Enhancing Walmart E-commerce
Search Relevance Using Large Language Models", WWW 2025 (soft-target teacher,
within-query margin distillation); Hofstätter et al., 2020 (Margin-MSE).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class WithinQueryMarginMSELoss(nn.Module):
    """Mean squared error between student and teacher score margins of same-query pairs.

    For each query q with candidates i < j: ((s_i - s_j) - (t_i - t_j))², averaged
    over q's pairs, then averaged over the queries that have at least one pair.

    | input            | shape | meaning                               |
    |------------------|-------|---------------------------------------|
    | student_scores   | [N]   | student logits                        |
    | teacher_scores   | [N]   | cached teacher scores                 |
    | group_ids        | [N]   | query id of each row (any int labels) |
    """

    def forward(self, student_scores: torch.Tensor, teacher_scores: torch.Tensor,
                group_ids: torch.Tensor) -> torch.Tensor:
        s = student_scores.reshape(-1)
        t = teacher_scores.reshape(-1).to(s.dtype)
        sq = ((s[:, None] - s[None, :]) - (t[:, None] - t[None, :])) ** 2
        return within_query_mean(sq, group_ids)


class WithinQueryRankNetLoss(nn.Module):
    """RankNet with soft pair targets: P(i above j) = 0.5 + (y_i - y_j) / 2 for labels y in [0, 1].

    Binary cross-entropy of sigmoid(s_i - s_j) against that probability over
    same-query pairs i < j, averaged per query, then over queries. It asks only
    for the order (and its confidence), which pointwise loss spends capacity
    calibrating across queries for.

    | input    | shape | meaning                               |
    |----------|-------|---------------------------------------|
    | scores   | [N]   | model logits                          |
    | labels   | [N]   | human soft labels in [0, 1]           |
    | group_ids| [N]   | query id of each row (any int labels) |
    """

    def forward(self, scores: torch.Tensor, labels: torch.Tensor, group_ids: torch.Tensor) -> torch.Tensor:
        s = scores.reshape(-1)
        y = labels.reshape(-1).to(s.dtype)
        target = (0.5 + (y[:, None] - y[None, :]) / 2).clamp(0.0, 1.0)
        bce = F.binary_cross_entropy_with_logits(s[:, None] - s[None, :], target, reduction="none")
        return within_query_mean(bce, group_ids)


def within_query_mean(values: torch.Tensor, group_ids: torch.Tensor) -> torch.Tensor:
    """Mean over queries of the mean of ``values[i, j]`` over that query's pairs i < j ([N, N] -> scalar)."""
    g = group_ids.reshape(-1)
    upper = torch.ones(len(g), len(g), dtype=torch.bool, device=g.device).triu(diagonal=1)
    pair = (g[:, None] == g[None, :]) & upper
    if not pair.any():
        return values.sum() * 0.0  # no within-query pair in the batch: no signal, keep the graph
    _, owner = torch.unique(g, return_inverse=True)  # owner[i]: dense query index of row i
    rows = owner[:, None].expand_as(pair)[pair]
    n_groups = int(owner.max()) + 1
    picked = values[pair]
    sums = torch.zeros(n_groups, dtype=values.dtype, device=values.device).index_add(0, rows, picked)
    counts = torch.zeros(n_groups, dtype=values.dtype, device=values.device).index_add(0, rows, torch.ones_like(picked))
    has_pairs = counts > 0
    return (sums[has_pairs] / counts[has_pairs]).mean()


class SoftTargetCrossEntropyLoss(nn.Module):
    """Cross-entropy against a soft target distribution (not hard labels).

    | input    | shape          | meaning                                          |
    |----------|----------------|--------------------------------------------------|
    | logits   | [N, C] or [N]  | classifier logits; [N] means one binary logit    |
    | targets  | [N, C] or [N]  | probabilities summing to 1 per row; [N]: P(rel.) |

    With C classes: mean over rows of -Σ_c p_c log softmax(z)_c. With one logit:
    binary cross-entropy with the soft probability as target.
    """

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if logits.dim() == 1 or logits.shape[-1] == 1:
            return F.binary_cross_entropy_with_logits(logits.reshape(-1), targets.reshape(-1).to(logits.dtype))
        return -(targets.to(logits.dtype) * F.log_softmax(logits, dim=-1)).sum(dim=-1).mean()
