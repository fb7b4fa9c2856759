"""95% bootstrap intervals over queries, for metrics and for paired differences between systems.

A mean over 500 test queries moves by about ±0.005 NDCG@5 when the queries are
resampled, which is the size of most differences between rerankers on judged
lists. Every reported metric therefore carries an interval, and every
comparison the interval of the *paired* difference (both systems on the same
resampled queries), so a reader can tell a gain from noise.
"""
from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .metrics import RankedList, ndcg_at_k, pairwise_counts, rank_by_scores, reciprocal_rank

RESAMPLES = 1000
SEED = 0


@dataclass(frozen=True)
class PerQuery:
    """Each query's metric values; NaN where a metric is undefined (no gain, no relevant item, no pair)."""

    values: dict[str, np.ndarray]   # ndcg@k, mrr: one value per query
    pair_correct: np.ndarray        # pairwise accuracy is a ratio of sums (micro average): keep both parts
    pair_total: np.ndarray

    def __len__(self) -> int:
        return len(self.pair_total)


def per_query(lists: Sequence[RankedList], ks: Sequence[int] = (5, 10), relevant_threshold: float = 0.75) -> PerQuery:
    """Per-query NDCG@k, reciprocal rank and pairwise counts for ``(labels, scores)`` lists."""
    values: dict[str, list[float]] = {f"ndcg@{k}": [] for k in ks}
    values["mrr"] = []
    correct, total = [], []
    for labels, scores in lists:
        ranked = rank_by_scores(labels, scores)
        for k in ks:
            value = ndcg_at_k(ranked, k)
            values[f"ndcg@{k}"].append(np.nan if value is None else value)
        rr = reciprocal_rank(ranked, relevant_threshold)
        values["mrr"].append(np.nan if rr is None else rr)
        c, t = pairwise_counts(labels, scores)
        correct.append(c)
        total.append(t)
    return PerQuery({k: np.asarray(v, dtype=float) for k, v in values.items()},
                    np.asarray(correct, dtype=float), np.asarray(total, dtype=float))


def _statistics(q: PerQuery, idx: np.ndarray) -> dict[str, np.ndarray]:
    """Each metric over the query samples ``idx`` ([resamples, queries] of query indices)."""
    out = {}
    with warnings.catch_warnings():  # a sample without any defined value gives NaN, which is what we want
        warnings.simplefilter("ignore", RuntimeWarning)
        for name, v in q.values.items():
            out[name] = np.nanmean(v[idx], axis=-1)
    totals = q.pair_total[idx].sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out["pairwise_accuracy"] = q.pair_correct[idx].sum(axis=-1) / totals
    return out


def _resample(n: int, resamples: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n, size=(resamples, n))


def intervals(q: PerQuery, resamples: int = RESAMPLES, seed: int = SEED) -> dict[str, tuple[float, float, float]]:
    """``{metric: (value, low, high)}``: the metric on all queries and its 95% percentile bootstrap interval."""
    point = {k: float(v[0]) for k, v in _statistics(q, np.arange(len(q))[None, :]).items()}
    boot = _statistics(q, _resample(len(q), resamples, seed))
    return {k: (point[k], *map(float, np.nanpercentile(boot[k], [2.5, 97.5]))) for k in point}


def paired_difference(a: PerQuery, b: PerQuery, resamples: int = RESAMPLES,
                      seed: int = SEED) -> dict[str, tuple[float, float, float]]:
    """``{metric: (a - b, low, high)}`` over the same resampled queries: the contrast ``a - b``."""
    return contrast([(1, a), (-1, b)], resamples, seed)


def contrast(terms: Sequence[tuple[float, PerQuery]], resamples: int = RESAMPLES,
             seed: int = SEED) -> dict[str, tuple[float, float, float]]:
    """``{metric: (Σ w·system, low, high)}`` over the same resampled queries, e.g. a difference of two systems'
    losses ``[(1, a_clean), (-1, a_noisy), (-1, b_clean), (1, b_noisy)]``; all must cover the same query list."""
    sizes = [len(q) for _, q in terms]
    if len(set(sizes)) != 1:
        raise ValueError(f"systems compared must be scored on the same queries (got {' vs '.join(map(str, sizes))} "
                         "queries): score every system on one query list")
    whole, idx = np.arange(sizes[0])[None, :], _resample(sizes[0], resamples, seed)
    points = [(w, _statistics(q, whole)) for w, q in terms]
    boots = [(w, _statistics(q, idx)) for w, q in terms]
    return {k: (float(sum(w * p[k][0] for w, p in points)),
                *map(float, np.nanpercentile(sum(w * b[k] for w, b in boots), [2.5, 97.5]))) for k in points[0][1]}


def average_draws(clean: PerQuery, draws: Sequence[PerQuery], changed: Sequence[Sequence[bool]]) -> PerQuery:
    """Each query's values averaged over the ``draws`` whose ``changed[d][q]`` is true, its ``clean`` ones where
    none is: the expected effect of a random change (e.g. a typo), with less noise than one draw of it."""
    weight = np.asarray(changed, dtype=float)  # [draws, queries]
    count = weight.sum(axis=0)

    def mean(parts: list[np.ndarray], fallback: np.ndarray) -> np.ndarray:
        total = (np.stack(parts) * weight).sum(axis=0)
        return np.where(count > 0, total / np.maximum(count, 1), fallback)

    return PerQuery({k: mean([d.values[k] for d in draws], v) for k, v in clean.values.items()},
                    mean([d.pair_correct for d in draws], clean.pair_correct), clean.pair_total)


def random_per_query(label_lists: Sequence[Sequence[float]], ks: Sequence[int] = (5, 10),
                     relevant_threshold: float = 0.75, repeats: int = 20, seed: int = 0) -> PerQuery:
    """Random order's expected per-query values: each query's metrics averaged over ``repeats`` shuffles."""
    rng = np.random.default_rng(seed)
    runs = [per_query([(labels, rng.random(len(labels)).tolist()) for labels in label_lists], ks, relevant_threshold)
            for _ in range(repeats)]
    values = {k: np.mean([r.values[k] for r in runs], axis=0) for k in runs[0].values}
    return PerQuery(values, np.mean([r.pair_correct for r in runs], axis=0), runs[0].pair_total)


@dataclass(frozen=True)
class Comparison:
    """Systems on the same queries: each metric with its interval, and paired differences with theirs."""

    queries: int
    systems: dict[str, dict[str, tuple[float, float, float]]]      # name -> metric -> (value, low, high)
    differences: dict[str, dict[str, tuple[float, float, float]]]  # "a - b" -> metric -> (diff, low, high)

    def to_json(self) -> dict:
        """Plain JSON: NaN (a metric no query defines) becomes null."""
        def clean(v: tuple[float, ...]) -> list[float | None]:
            return [None if np.isnan(x) else round(x, 6) for x in v]

        return {"queries": self.queries,
                "systems": {s: {m: clean(v) for m, v in ms.items()} for s, ms in self.systems.items()},
                "differences": {d: {m: clean(v) for m, v in ms.items()} for d, ms in self.differences.items()}}


def compare(per_system: dict[str, PerQuery], pairs: Sequence[tuple[str, str]],
            resamples: int = RESAMPLES, seed: int = SEED) -> Comparison:
    """Intervals for every system and paired-difference intervals for each ``(a, b)`` in ``pairs``."""
    sizes = {len(q) for q in per_system.values()}
    if len(sizes) > 1:
        raise ValueError(f"systems cover different query lists ({sorted(sizes)} queries)")
    systems = {name: intervals(q, resamples, seed) for name, q in per_system.items()}
    differences = {f"{a} - {b}": paired_difference(per_system[a], per_system[b], resamples, seed) for a, b in pairs}
    return Comparison(sizes.pop() if sizes else 0, systems, differences)
