"""Ranking metrics against hand-computed numbers."""
from __future__ import annotations

import math
import random

import pytest

from training.metrics import (dcg, evaluate_rankings, ndcg_at_k, pairwise_counts, random_baseline, rank_by_scores,
                              reciprocal_rank)


def test_dcg_and_ndcg_by_hand():
    # gains in ranked order [1, 0, 0.5]: DCG@3 = 1/log2(2) + 0/log2(3) + 0.5/log2(4) = 1 + 0 + 0.25 = 1.25
    assert dcg([1, 0, 0.5], 3) == pytest.approx(1.25)
    # ideal order [1, 0.5, 0]: 1 + 0.5/log2(3) = 1.3154649; NDCG@3 = 1.25 / 1.3154649 = 0.9502344
    assert ndcg_at_k([1, 0, 0.5], 3) == pytest.approx(1.25 / (1 + 0.5 / math.log2(3)))
    assert ndcg_at_k([1, 0, 0.5], 3) == pytest.approx(0.9502344, abs=1e-7)
    # @1 only the top item counts: 1 / 1
    assert ndcg_at_k([1, 0, 0.5], 1) == 1.0
    # [0.5, 0, 1] @2: DCG = 0.5 + 0 = 0.5; ideal@2 = 1 + 0.5/log2(3) = 1.3154649 -> 0.3800938
    assert ndcg_at_k([0.5, 0, 1], 2) == pytest.approx(0.3800938, abs=1e-7)
    # the one relevant item second: (1/log2(3)) / 1 = 0.6309298
    assert ndcg_at_k([0, 1], 10) == pytest.approx(0.6309298, abs=1e-7)
    assert ndcg_at_k([0, 0, 0], 5) is None  # nothing to find


def test_reciprocal_rank_by_hand():
    assert reciprocal_rank([0.2, 0.5, 1.0, 1.0], threshold=0.75) == pytest.approx(1 / 3)  # first >= 0.75 at rank 3
    assert reciprocal_rank([0.75, 0.0], threshold=0.75) == 1.0  # the threshold itself counts as relevant
    assert reciprocal_rank([0.5, 0.7], threshold=0.75) is None


def test_pairwise_counts_by_hand():
    # labels [1, 0.5, 0, 0], scores [0.9, 0.1, 0.5, 0.5]
    # (0,1): +0.5 * +0.8 > 0 -> 1; (0,2): +1 * +0.4 -> 1; (0,3): +1 * +0.4 -> 1
    # (1,2): +0.5 * -0.4 < 0 -> 0; (1,3): same -> 0; (2,3): equal labels, not counted  => 3 of 5
    assert pairwise_counts([1, 0.5, 0, 0], [0.9, 0.1, 0.5, 0.5]) == (3.0, 5)
    # a score tie on differently labelled items counts half: (0,1) tie -> 0.5; (0,2), (1,2) wrong -> 0
    assert pairwise_counts([1, 0.5, 0], [0.2, 0.2, 0.3]) == (0.5, 3)
    assert pairwise_counts([1, 1], [0.0, 5.0]) == (0.0, 0)


def test_rank_by_scores_is_descending_and_stable():
    assert rank_by_scores([0.1, 0.2, 0.3], [1.0, 3.0, 2.0]) == [0.2, 0.3, 0.1]
    assert rank_by_scores(["a", "b", "c"], [1.0, 1.0, 0.0]) == ["a", "b", "c"]  # ties keep the given order


def test_evaluate_rankings_skips_lists_with_nothing_to_find():
    lists = [
        ([0, 1, 0.5], [0.1, 0.9, 0.5]),  # perfect: NDCG 1, RR 1, pairs 3 of 3
        ([0, 0], [1.0, 2.0]),            # all zero: left out of NDCG and MRR, no pairs
        ([1, 0], [0.0, 1.0]),            # reversed: NDCG 1/log2(3) = 0.6309298, RR 1/2, pairs 0 of 1
    ]
    result = evaluate_rankings(lists, ks=(1, 5), relevant_threshold=0.75)
    assert result["ndcg@5"] == pytest.approx((1 + 1 / math.log2(3)) / 2)  # 0.8154649, not divided by 3
    assert result["ndcg@1"] == pytest.approx((1 + 0) / 2)
    assert result["mrr"] == pytest.approx((1 + 0.5) / 2)
    assert result["pairwise_accuracy"] == pytest.approx(3 / 4)  # micro: pooled pairs, not a mean of lists
    assert result["queries"] == 3.0
    assert set(result) == {"ndcg@1", "ndcg@5", "mrr", "pairwise_accuracy", "queries"}


def test_evaluate_rankings_without_eligible_lists_gives_nan():
    result = evaluate_rankings([([0, 0], [1.0, 0.0])], ks=(5,))
    assert math.isnan(result["ndcg@5"]) and math.isnan(result["mrr"]) and math.isnan(result["pairwise_accuracy"])
    assert result["queries"] == 1.0


def test_random_baseline_is_seeded_and_near_chance():
    rng = random.Random(42)
    lists = [[rng.choice((0.0, 0.5, 1.0)) for _ in range(6)] for _ in range(300)]
    first = random_baseline(lists, seed=3)
    assert random_baseline(lists, seed=3) == first
    assert random_baseline(lists, seed=4) != first
    assert first["pairwise_accuracy"] == pytest.approx(0.5, abs=0.02)
    assert first["queries"] == 300.0
    perfect = evaluate_rankings((labels, labels) for labels in lists)
    assert perfect["ndcg@5"] == pytest.approx(1.0) and perfect["pairwise_accuracy"] == 1.0
    assert 0.3 < first["ndcg@5"] < 0.95  # random order is far from ideal
    assert random_baseline(lists, repeats=0) == {}
