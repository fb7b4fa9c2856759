"""Ranking metrics over judged lists, shared by offline and through-the-cluster evaluation.

A list is the judged products of one query: their soft labels (gains) and the
scores a ranker gave them. Gains are the soft labels in [0, 1] (linear gain);
a product counts as relevant for MRR when its label reaches ``relevant_threshold``.
"""
from __future__ import annotations

import math
import random
from collections.abc import Iterable, Sequence

RankedList = tuple[Sequence[float], Sequence[float]]  # (labels, scores) of one query


def dcg(gains: Sequence[float], k: int) -> float:
    """Discounted cumulative gain of gains already in ranked order."""
    return sum(g / math.log2(i + 2) for i, g in enumerate(gains[:k]))


def ndcg_at_k(ranked_gains: Sequence[float], k: int) -> float | None:
    """NDCG@k of gains in ranked order; None when every gain is 0 (nothing to find)."""
    ideal = dcg(sorted(ranked_gains, reverse=True), k)
    return None if ideal <= 0 else dcg(ranked_gains, k) / ideal


def reciprocal_rank(ranked_gains: Sequence[float], threshold: float) -> float | None:
    """1 / rank of the first relevant item; None when the list has none."""
    if not any(g >= threshold for g in ranked_gains):
        return None
    return next(1.0 / (i + 1) for i, g in enumerate(ranked_gains) if g >= threshold)


def pairwise_counts(labels: Sequence[float], scores: Sequence[float]) -> tuple[float, int]:
    """(correctly ordered, total) over pairs with different labels; a score tie counts half."""
    correct, total = 0.0, 0
    for i in range(len(labels)):
        for j in range(i + 1, len(labels)):
            if labels[i] == labels[j]:
                continue
            total += 1
            agree = (labels[i] - labels[j]) * (scores[i] - scores[j])
            correct += 1.0 if agree > 0 else 0.5 if agree == 0 else 0.0
    return correct, total


def rank_by_scores(labels: Sequence[float], scores: Sequence[float]) -> list[float]:
    """Labels reordered by descending score (stable: ties keep the given order)."""
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    return [labels[i] for i in order]


def split_scores(label_lists: Sequence[Sequence[float]], scores: Sequence[float]) -> list[RankedList]:
    """(labels, scores) per list from scores given list after list, as flat pair batches are scored."""
    ranked, pos = [], 0
    for labels in label_lists:
        ranked.append((labels, list(scores[pos:pos + len(labels)])))
        pos += len(labels)
    return ranked


def evaluate_rankings(lists: Iterable[RankedList], ks: Sequence[int] = (5, 10),
                      relevant_threshold: float = 0.75) -> dict[str, float]:
    """Mean NDCG@k, MRR and micro pairwise accuracy over judged lists.

    Returns keys ``ndcg@k`` for each k, ``mrr``, ``pairwise_accuracy`` and
    ``queries`` (lists seen). Lists whose labels are all 0 are left out of NDCG,
    lists without a relevant item out of MRR.
    """
    ndcg: dict[int, list[float]] = {k: [] for k in ks}
    rr: list[float] = []
    correct, total, n = 0.0, 0, 0
    for labels, scores in lists:
        n += 1
        ranked = rank_by_scores(labels, scores)
        for k in ks:
            value = ndcg_at_k(ranked, k)
            if value is not None:
                ndcg[k].append(value)
        value = reciprocal_rank(ranked, relevant_threshold)
        if value is not None:
            rr.append(value)
        c, t = pairwise_counts(labels, scores)
        correct, total = correct + c, total + t
    result = {f"ndcg@{k}": _mean(v) for k, v in ndcg.items()}
    result.update(mrr=_mean(rr), pairwise_accuracy=correct / total if total else float("nan"), queries=float(n))
    return result


def random_baseline(label_lists: Sequence[Sequence[float]], ks: Sequence[int] = (5, 10),
                    relevant_threshold: float = 0.75, repeats: int = 20, seed: int = 0) -> dict[str, float]:
    """The metrics of random order, averaged over ``repeats`` shuffles (a fixed seed: reproducible)."""
    rng = random.Random(seed)
    runs = [evaluate_rankings(((labels, [rng.random() for _ in labels]) for labels in label_lists), ks,
                              relevant_threshold) for _ in range(repeats)]
    return {key: _mean([r[key] for r in runs]) for key in runs[0]} if runs else {}


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else float("nan")
