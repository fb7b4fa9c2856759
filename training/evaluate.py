"""Offline evaluation: score a split's judged lists with any scorer and compare metrics.

A scorer is anything with ``name`` and ``score(pairs) -> list[float]``: a teacher
checkpoint, a student checkpoint or an exported zip (scored with onnxruntime
exactly as ML Commons does). The random-order baseline is always reported, so
every number has a floor to compare with.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from reranker_core.template import ProductTemplate

from .datasets import Dataset, group_by_query
from .metrics import RankedList, evaluate_rankings, random_baseline, split_scores
from .models import read_meta

Progress = Callable[[int, int], None]


class Scorer(Protocol):
    """What evaluation needs from a model."""

    name: str

    def score(self, pairs: Sequence[tuple[str, str]], batch_size: int = 32,
              progress: Progress | None = None) -> list[float]: ...


@dataclass(frozen=True)
class JudgedList:
    """One query's judged products: texts and soft labels, in the dataset's order."""

    query: str
    product_ids: tuple[str, ...]
    texts: tuple[str, ...]
    labels: tuple[float, ...]


def load_scorer(path: Path) -> Scorer:
    """A zip file, or a checkpoint directory (its ``reranker.json`` says teacher or student)."""
    path = Path(path)
    if path.is_file():
        from .onnx_scorer import ZipScorer

        return ZipScorer(path)
    role = read_meta(path).get("role")
    if role == "teacher":
        from .ensemble import load_teacher

        return load_teacher(path)
    from .student import CrossEncoder

    return CrossEncoder.load(path)


def judged_lists(dataset: Dataset, split: str, template: ProductTemplate,
                 fractions: tuple[float, float, float], salt: str, max_queries: int | None = None) -> list[JudgedList]:
    """The split's queries with at least two judged products (a single product has no order to get wrong)."""
    lists = []
    for query, rows in group_by_query(dataset.split(split, fractions, salt)).items():
        if len(rows) < 2:
            continue
        lists.append(JudgedList(query, tuple(r.product_id for r in rows),
                                tuple(template.render(dataset.products[r.product_id]) for r in rows),
                                tuple(r.soft_label for r in rows)))
    lists.sort(key=lambda j: j.query)
    return lists[:max_queries] if max_queries else lists


def ranked_lists(scorer: Scorer, lists: Sequence[JudgedList], progress: Progress | None = None) -> list[RankedList]:
    """``scorer``'s (labels, scores) for each list, in ``lists`` order."""
    pairs = [(j.query, t) for j in lists for t in j.texts]
    return split_scores([j.labels for j in lists], scorer.score(pairs, progress=progress))


def evaluate_scorer(scorer: Scorer, lists: Sequence[JudgedList], ks: Sequence[int] = (5, 10),
                    relevant_threshold: float = 0.75, progress: Progress | None = None) -> dict[str, float]:
    """Metrics of ``scorer``'s order over ``lists``."""
    return evaluate_rankings(ranked_lists(scorer, lists, progress), ks, relevant_threshold)


def validation_curve(lists: Sequence[JudgedList], relevant_threshold: float = 0.75) -> Callable[[Scorer], dict]:
    """A measure for ``train_student``'s curve: NDCG@5 and pairwise accuracy of the model on ``lists``."""
    def measure(scorer: Scorer) -> dict:
        found = evaluate_scorer(scorer, lists, relevant_threshold=relevant_threshold)
        return {"ndcg@5": round(found["ndcg@5"], 6), "pairwise_accuracy": round(found["pairwise_accuracy"], 6)}

    return measure


def evaluate_offline(scorers: Sequence[Scorer], lists: Sequence[JudgedList], ks: Sequence[int] = (5, 10),
                     relevant_threshold: float = 0.75,
                     progress: Callable[[str], Progress] | None = None) -> dict[str, dict[str, float]]:
    """``{"random": ..., scorer.name: ...}``: one metrics dict per system, random baseline first."""
    results = {"random": random_baseline([j.labels for j in lists], ks, relevant_threshold)}
    for scorer in scorers:
        results[scorer.name] = evaluate_scorer(scorer, lists, ks, relevant_threshold,
                                               progress(scorer.name) if progress else None)
    return results


def int8_verdict(fp32_zip: Path, int8_zip: Path, lists: Sequence, relevant_threshold: float = 0.75,
                 progress: Progress | None = None) -> dict:
    """int8 - fp32 on the same judged lists, paired; ``within_noise`` when int8 is not worse beyond noise.

    Not worse beyond noise: the 95% paired interval of the NDCG@5 and of the
    pairwise-accuracy differences each reaches 0 or above. ``reranker run``
    ships the int8 zip on that verdict (it is smaller and faster on CPUs).
    """
    from .bootstrap import paired_difference, per_query
    from .onnx_scorer import ZipScorer

    found = {name: per_query(ranked_lists(ZipScorer(path), lists, progress), relevant_threshold=relevant_threshold)
             for name, path in (("fp32", fp32_zip), ("int8", int8_zip))}
    diff = paired_difference(found["int8"], found["fp32"])
    keys = ("ndcg@5", "pairwise_accuracy")
    return {"queries": len(lists), "fp32": str(fp32_zip), "int8": str(int8_zip),
            "int8 - fp32": {k: [round(v, 6) for v in diff[k]] for k in keys},
            "within_noise": all(diff[k][2] >= 0 for k in keys)}
