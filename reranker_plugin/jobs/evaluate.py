"""Evaluate ranking through the real cluster: BM25 alone vs rerank pipelines, on judged lists.

Lists are judged-only: for each query the cluster ranks exactly the query's
judged products (an ``ids`` filter), never the whole index, so the metrics
compare systems on the same labelled candidates and an unjudged product can
never be ranked in between. BM25 matches are scored by a ``multi_match``
``should`` clause; judged products that do not match come back with score 0.
A judged product missing from the hits (e.g. never indexed) is ranked last.
Metrics come from ``training.metrics.evaluate_rankings``, the same code as the
offline evaluation, so offline and through-the-cluster numbers are comparable.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from opensearchpy import OpenSearch

from reranker_core.errors import ClusterError, ConfigError
from reranker_core.files import atomic_write, write_json_atomic
from training.metrics import RankedList, evaluate_rankings

from ..connection import cluster_call
from .search import send

BM25 = "bm25"
PLOTTED = ("ndcg@5", "ndcg@10", "mrr")


def judged_query(query: str, judged_ids: Sequence[str], fields: Sequence[str]) -> dict[str, Any]:
    """Search body returning every judged product: BM25 ``should`` clause, ``ids`` filter."""
    return {
        "size": len(judged_ids),
        "query": {"bool": {"should": [{"multi_match": {"query": query, "fields": list(fields)}}],
                           "filter": [{"ids": {"values": list(judged_ids)}}]}},
    }


def judged_search(client: OpenSearch, index: str, query: str, judged_ids: list[str], fields: tuple[str, ...],
                  pipeline: str | None) -> list[str]:
    """Ranked ids of the query's judged products only; ``pipeline=None`` is plain BM25."""
    return [doc_id for doc_id, _ in _judged_hits(client, index, query, judged_ids, fields, pipeline)]


def evaluate_through_cluster(client: OpenSearch, index: str, lists: Mapping[str, Mapping[str, float]],
                             fields: tuple[str, ...], pipelines: Sequence[str | None],
                             ks: Sequence[int] = (5, 10), relevant_threshold: float = 0.75,
                             progress: Callable[[int, int], None] | None = None) -> dict[str, dict[str, float]]:
    """Metrics per system (``"bm25"`` for None, else the pipeline name) over ``lists`` (query -> {id: label}).

    ``progress(done, total)`` counts searches: one per query per system.
    """
    names = [pipeline or BM25 for pipeline in pipelines]
    if len(set(names)) != len(names):
        raise ConfigError(f"systems {names} are not distinct", f"list each pipeline once; None is named {BM25!r}")
    total, done = len(lists) * len(names), 0
    results: dict[str, dict[str, float]] = {}
    for name, pipeline in zip(names, pipelines):
        ranked: list[RankedList] = []
        for query, labels in lists.items():
            judged = list(labels)
            hits = _judged_hits(client, index, query, judged, fields, pipeline) if judged else []
            ranked.append(ranked_list(hits, labels))
            done += 1
            if progress:
                progress(done, total)
        results[name] = evaluate_rankings(ranked, ks, relevant_threshold)
    return results


def ranked_list(hits: Sequence[tuple[str, float]], labels: Mapping[str, float]) -> RankedList:
    """(labels, scores) in hit order; judged products missing from the hits go last, tied.

    The missing ones get one finite score below every hit rather than -inf,
    because -inf minus -inf is NaN and would count their pairs as misordered
    instead of tied in the pairwise accuracy.
    """
    seen = {doc_id for doc_id, _ in hits}
    ordered = [(labels[d], s) for d, s in hits if d in labels]
    floor = min((s for _, s in ordered), default=0.0) - 1.0
    ordered += [(label, floor) for doc_id, label in labels.items() if doc_id not in seen]
    return [label for label, _ in ordered], [score for _, score in ordered]


def write_json(results: Mapping[str, Mapping[str, float]], path: Path) -> None:
    """Write results atomically; NaN (a metric with no eligible query) becomes null, valid JSON."""
    clean = {system: {key: None if isinstance(v, float) and math.isnan(v) else v for key, v in metrics.items()}
             for system, metrics in results.items()}
    write_json_atomic(path, clean, allow_nan=False)


def plot_comparison(results: Mapping[str, Mapping[str, float]], path: Path,
                    title: str = "Ranking through the cluster") -> None:
    """PNG bar chart of NDCG@5, NDCG@10 and MRR grouped by system, written atomically."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # Agg explicitly: no display, no pyplot state
    from matplotlib.figure import Figure

    systems = list(results)
    if not systems:
        raise ValueError("no results to plot")
    fig = Figure(figsize=(max(4.0, 1.8 * len(systems) + 1.5), 3.8), dpi=120, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    width = 0.8 / len(PLOTTED)
    for j, metric in enumerate(PLOTTED):
        values = [float(results[s].get(metric, math.nan)) for s in systems]
        xs = [i + (j - (len(PLOTTED) - 1) / 2) * width for i in range(len(systems))]
        bars = ax.bar(xs, [0.0 if math.isnan(v) else v for v in values], width, label=metric.upper())
        ax.bar_label(bars, labels=["n/a" if math.isnan(v) else f"{v:.3f}" for v in values], fontsize=7)
    ax.set_xticks(range(len(systems)), systems)
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("score (judged lists)")
    ax.set_title(title)
    fig.legend(loc="outside lower center", ncol=len(PLOTTED), fontsize=8)
    atomic_write(Path(path), lambda tmp: fig.savefig(tmp, format="png"))


def _judged_hits(client: OpenSearch, index: str, query: str, judged_ids: Sequence[str], fields: Sequence[str],
                 pipeline: str | None) -> list[tuple[str, float]]:
    if not judged_ids:
        return []
    with cluster_call(f"judged search on {index!r} for {query!r}", "check the cluster and the pipeline",
                      missing=ClusterError(f"index {index!r} or pipeline {pipeline!r} not found",
                                           "index the catalog and deploy the pipeline first, or fix the names")):
        result = send(client, index, judged_query(query, judged_ids, fields), query, pipeline)
    return [(hit["_id"], float(hit["_score"])) for hit in result["hits"]["hits"]]
