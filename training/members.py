"""An ensemble teacher's members and how a view's weight is fit on validation.

Apart from :mod:`training.ensemble` so that the views built elsewhere (the
behaviour views of :mod:`training.aggregate`) use the same fit without
importing the teacher that loads them.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .metrics import evaluate_rankings, split_scores

WEIGHT_GRID = tuple(round(0.1 * i, 1) for i in range(21))  # 0 .. 2 in the cross-encoder's standard deviations


@dataclass(frozen=True)
class Member:
    """One scorer of the ensemble and how its score enters the sum."""

    kind: str          # cross_encoder | bi_encoder
    source: str        # checkpoint/zip path (relative to the teacher dir) or model spec
    coefficient: float
    mean: float        # subtracted before scaling (validation mean)


def fit_weight(base: Sequence[float], view: Sequence[float], labels: Sequence[Sequence[float]],
               metric: str = "pairwise_accuracy") -> tuple[float, dict[float, float]]:
    """The grid weight w maximizing ``metric`` of z(base) + w·z(view) on validation lists; ties go to smaller w.

    ``base`` and ``view`` hold the scores of the lists' pairs, list after list;
    ``labels`` each list's labels. Returns the weight and the metric per weight.
    """
    b, v = np.asarray(base, dtype=float), np.asarray(view, dtype=float)
    zb, zv = (b - b.mean()) / (b.std() or 1.0), (v - v.mean()) / (v.std() or 1.0)
    curve = {w: evaluate_rankings(split_scores(labels, (zb + w * zv).tolist()))[metric] for w in WEIGHT_GRID}
    best = max(WEIGHT_GRID, key=lambda w: (curve[w], -w))
    return best, curve


def coefficient(weight: float, base: Sequence[float], view: Sequence[float]) -> tuple[float, float]:
    """(a, μ) so that ``a (s_view − μ)`` is ``weight`` view standard deviations in base-logit units."""
    b, v = np.asarray(base, dtype=float), np.asarray(view, dtype=float)
    return weight * float(b.std()) / (float(v.std()) or 1.0), float(v.mean())


def cross_encoder_config(cfg, output: Path):
    """The trainer settings of the ensemble teacher's cross-encoder: pointwise + RankNet on every human label."""
    from reranker_core.config import StudentConfig

    return StudentConfig(model=cfg.model, layers=None, loss="pointwise", learning_rate=cfg.learning_rate,
                         epochs=cfg.epochs,
                         max_steps=cfg.max_steps, max_pairs=None, queries_per_batch=cfg.queries_per_batch,
                         rank_weight=cfg.rank_weight, precision=cfg.precision, output=str(output), seed=cfg.seed)
