"""Bootstrap intervals: point values equal the plain metrics, intervals contain them and shrink with more queries."""
from __future__ import annotations

import random

import numpy as np
import pytest

from training.bootstrap import average_draws, intervals, paired_difference, per_query
from training.metrics import evaluate_rankings


def _lists(n: int, noise: float, seed: int) -> list[tuple[list[float], list[float]]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        labels = [rng.choice([0.0, 0.5, 1.0]) for _ in range(6)]
        out.append((labels, [label + rng.gauss(0, noise) for label in labels]))
    return out


def test_point_values_equal_evaluate_rankings() -> None:
    lists = _lists(50, 0.5, 0)
    plain = evaluate_rankings(lists)
    boot = intervals(per_query(lists), resamples=200)
    for key in ("ndcg@5", "ndcg@10", "mrr", "pairwise_accuracy"):
        value, low, high = boot[key]
        assert value == pytest.approx(plain[key])
        assert low <= value <= high


def test_interval_shrinks_with_more_queries() -> None:
    small = intervals(per_query(_lists(40, 0.8, 1)), resamples=300)["ndcg@5"]
    large = intervals(per_query(_lists(1000, 0.8, 1)), resamples=300)["ndcg@5"]
    assert large[2] - large[1] < (small[2] - small[1]) / 2


def test_paired_difference_of_hand_made_lists() -> None:
    # a orders every list perfectly, b reverses it: a - b is positive on every resample
    lists = [([1.0, 0.5, 0.0], [3.0, 2.0, 1.0]), ([0.0, 1.0], [0.0, 1.0]), ([1.0, 0.0, 0.0], [2.0, 1.0, 0.0])]
    reverse = [(labels, [-s for s in scores]) for labels, scores in lists]
    diff = paired_difference(per_query(lists), per_query(reverse), resamples=100)
    value, low, high = diff["pairwise_accuracy"]
    assert value == pytest.approx(1.0) and low == pytest.approx(1.0) and high == pytest.approx(1.0)
    assert diff["ndcg@5"][1] > 0


def test_identical_systems_differ_by_exactly_zero() -> None:
    q = per_query(_lists(30, 0.5, 2))
    assert all(v == (0.0, 0.0, 0.0) for v in paired_difference(q, q, resamples=50).values())


def test_paired_difference_needs_the_same_queries() -> None:
    with pytest.raises(ValueError, match=r"same queries \(got 3 vs 4 queries\): score every system on one query"):
        paired_difference(per_query(_lists(3, 0.1, 0)), per_query(_lists(4, 0.1, 0)))


def test_random_order_is_half_right_and_below_a_perfect_ranker() -> None:
    from training.bootstrap import random_per_query

    lists = _lists(200, 0.0, 3)  # scores equal labels: a perfect ranker
    rand = intervals(random_per_query([labels for labels, _ in lists]), resamples=100)
    perfect = intervals(per_query(lists), resamples=100)
    assert rand["pairwise_accuracy"][0] == pytest.approx(0.5, abs=0.02)
    assert perfect["pairwise_accuracy"][0] == 1.0 and perfect["ndcg@5"][0] == pytest.approx(1.0)
    assert rand["ndcg@5"][2] < perfect["ndcg@5"][0]


def test_compare_names_systems_and_differences_and_writes_plain_json() -> None:
    import json

    from training.bootstrap import compare

    good, bad = _lists(100, 0.2, 4), _lists(100, 2.0, 4)
    result = compare({"good": per_query(good), "bad": per_query(bad)}, [("good", "bad")], resamples=200)
    assert result.queries == 100 and set(result.systems) == {"good", "bad"}
    value, low, high = result.differences["good - bad"]["pairwise_accuracy"]
    assert low > 0 and value == pytest.approx(result.systems["good"]["pairwise_accuracy"][0]
                                              - result.systems["bad"]["pairwise_accuracy"][0])
    json.dumps(result.to_json(), allow_nan=False)
    with pytest.raises(ValueError, match="different query lists"):
        compare({"a": per_query(good), "b": per_query(good[:50])}, [])


def test_a_contrast_of_two_is_the_paired_difference_and_of_four_a_difference_of_differences():
    from training.bootstrap import RESAMPLES, SEED, contrast

    rng = np.random.default_rng(3)
    lists = [[(list(rng.random(5)), list(rng.random(5))) for _ in range(60)] for _ in range(4)]
    a, b, c, d = (per_query(x) for x in lists)
    diff = paired_difference(a, b)  # against the difference computed by hand on the same resampled queries
    idx = np.random.default_rng(SEED).integers(0, 60, size=(RESAMPLES, 60))
    by_hand = np.nanmean(a.values["ndcg@5"][idx], axis=-1) - np.nanmean(b.values["ndcg@5"][idx], axis=-1)
    assert diff["ndcg@5"] == pytest.approx((np.nanmean(a.values["ndcg@5"]) - np.nanmean(b.values["ndcg@5"]),
                                            *np.percentile(by_hand, [2.5, 97.5])))
    loss_gap = contrast([(1, a), (-1, b), (-1, c), (1, d)])
    whole = {k: v[0] for k, v in contrast([(1, a)]).items()}
    assert loss_gap["ndcg@5"][0] == pytest.approx(
        whole["ndcg@5"] - contrast([(1, b)])["ndcg@5"][0] - contrast([(1, c)])["ndcg@5"][0]
        + contrast([(1, d)])["ndcg@5"][0])
    assert loss_gap["ndcg@5"][1] < loss_gap["ndcg@5"][0] < loss_gap["ndcg@5"][2]
    with pytest.raises(ValueError, match=r"same queries \(got 60 vs 10 queries\)"):
        contrast([(1, a), (-1, per_query(lists[1][:10]))])


def test_average_draws_means_only_the_draws_that_changed_a_query() -> None:
    """Query 0 changed in both draws (mean of the two), query 1 in the second only, query 2 in none (clean)."""
    labels = [1.0, 0.0, 0.5]
    clean = per_query([(labels, [3.0, 1.0, 2.0])] * 3)
    first = per_query([(labels, [1.0, 3.0, 2.0])] * 3)   # every pair wrong
    second = per_query([(labels, [3.0, 2.0, 1.0])] * 3)  # one pair of three wrong
    out = average_draws(clean, [first, second], [[True, False, False], [True, True, False]])
    assert out.pair_correct.tolist() == pytest.approx([1.0, 2.0, 3.0])
    assert out.values["ndcg@5"][2] == pytest.approx(clean.values["ndcg@5"][2])
    assert out.values["ndcg@5"][1] == pytest.approx(second.values["ndcg@5"][1])
    assert out.values["ndcg@5"][0] == pytest.approx((first.values["ndcg@5"][0] + second.values["ndcg@5"][0]) / 2)
    one = average_draws(clean, [first], [[True, True, True]])
    assert one.pair_correct.tolist() == first.pair_correct.tolist()
