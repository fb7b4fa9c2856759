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
from reranker_core.files import atomic_write
from reranker_core.output import QUIET, Output
from training.metrics import RankedList, evaluate_rankings

from ..connection import cluster_call
from .search import send

BM25 = "bm25"
PLOTTED = ("ndcg@5", "ndcg@10", "mrr", "pairwise_accuracy")


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


def rank_through_cluster(client: OpenSearch, index: str, lists: Mapping[str, Mapping[str, float]],
                         fields: tuple[str, ...], pipelines: Sequence[str | None],
                         progress: Callable[[int, int], None] | None = None) -> dict[str, list[RankedList]]:
    """Each system's (labels, scores) per query (``"bm25"`` for None, else the pipeline name), in ``lists`` order.

    ``lists`` maps query -> {product id: label}; ``progress(done, total)`` counts
    searches: one per query per system.
    """
    names = [pipeline or BM25 for pipeline in pipelines]
    if len(set(names)) != len(names):
        raise ConfigError(f"systems {names} are not distinct", f"list each pipeline once; None is named {BM25!r}")
    total, done = len(lists) * len(names), 0
    ranked: dict[str, list[RankedList]] = {}
    for name, pipeline in zip(names, pipelines):
        ranked[name] = []
        for query, labels in lists.items():
            judged = list(labels)
            hits = _judged_hits(client, index, query, judged, fields, pipeline) if judged else []
            ranked[name].append(ranked_list(hits, labels))
            done += 1
            if progress:
                progress(done, total)
    return ranked


def evaluate_through_cluster(client: OpenSearch, index: str, lists: Mapping[str, Mapping[str, float]],
                             fields: tuple[str, ...], pipelines: Sequence[str | None],
                             ks: Sequence[int] = (5, 10), relevant_threshold: float = 0.75,
                             progress: Callable[[int, int], None] | None = None) -> dict[str, dict[str, float]]:
    """Metrics per system over ``lists`` (see :func:`rank_through_cluster`)."""
    ranked = rank_through_cluster(client, index, lists, fields, pipelines, progress)
    return {name: evaluate_rankings(r, ks, relevant_threshold) for name, r in ranked.items()}


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


def plot_comparison(systems: Mapping[str, Mapping[str, Sequence[float | None]]], path: Path,
                    title: str = "Ranking through the cluster") -> None:
    """PNG bar chart of NDCG@5, NDCG@10, MRR and pairwise accuracy per system, with 95% intervals as error bars.

    ``systems`` maps name -> metric -> (value, low, high) (as in ``Comparison.to_json()``); written atomically.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # Agg explicitly: no display, no pyplot state
    from matplotlib.figure import Figure

    names = list(systems)
    if not names:
        raise ValueError("no results to plot")
    fig = Figure(figsize=(max(5.0, 2.0 * len(names) + 1.5), 4.0), dpi=120, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    width = 0.8 / len(PLOTTED)
    for j, metric in enumerate(PLOTTED):
        triples = [[math.nan if v is None else float(v) for v in systems[s].get(metric) or (None,) * 3]
                   for s in names]
        values = [t[0] for t in triples]
        errors = [[0.0 if math.isnan(t[0] - t[1]) else t[0] - t[1] for t in triples],
                  [0.0 if math.isnan(t[2] - t[0]) else t[2] - t[0] for t in triples]]
        xs = [i + (j - (len(PLOTTED) - 1) / 2) * width for i in range(len(names))]
        bars = ax.bar(xs, [0.0 if math.isnan(v) else v for v in values], width, yerr=errors, capsize=2,
                      label=metric.upper().replace("_", " "))
        ax.bar_label(bars, labels=["n/a" if math.isnan(v) else f"{v:.3f}" for v in values], fontsize=6,
                     padding=6)
    ax.set_xticks(range(len(names)), names, fontsize=8)
    ax.set_ylim(0, 1.15)
    ax.set_ylabel("score (judged lists), 95% interval")
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


def report_comparison(ranked: dict, pairs: list[tuple[str, str]], title: str, out_path: Path,
                      relevant_threshold: float, out: Output = QUIET) -> dict:
    """Show each system's metrics with 95% bootstrap intervals and the paired differences in ``pairs`` (as
    tables through ``out``); write ``out_path`` (JSON) and its PNG beside it, and return the JSON's content.
    ``ranked`` maps name -> RankedLists or a ready PerQuery."""
    from rich.table import Table

    from reranker_core.files import write_json_atomic
    from training.bootstrap import PerQuery, compare, per_query

    per_system = {name: r if isinstance(r, PerQuery) else per_query(r, relevant_threshold=relevant_threshold)
                  for name, r in ranked.items()}
    result = compare(per_system, pairs)
    keys = ("ndcg@5", "ndcg@10", "mrr", "pairwise_accuracy")
    table = Table("system", *keys, title=f"{title} (95% bootstrap interval over {result.queries} queries)")
    for name, metrics in result.systems.items():
        table.add_row(name, *(_interval(metrics[k]) for k in keys))
    out.say(table)
    if result.differences:
        diffs = Table("paired difference", *keys, title="differences on the same queries (interval excludes 0: "
                                                        "not noise)")
        for name, metrics in result.differences.items():
            diffs.add_row(name, *(_interval(metrics[k], signed=True) for k in keys))
        out.say(diffs)
    data = {"title": title, **result.to_json()}
    write_json_atomic(out_path, data, allow_nan=False)
    plot_comparison(data["systems"], out_path.with_suffix(".png"), title=title)
    out.say(f"wrote {out_path} and {out_path.with_suffix('.png')}")
    return data


def _interval(triple: tuple[float, float, float], signed: bool = False) -> str:
    value, low, high = triple
    if value != value:  # NaN: no query defines the metric
        return "n/a"
    mark = "" if not signed or low <= 0 <= high else " *"
    return f"{value:+.4f} [{low:+.3f}, {high:+.3f}]{mark}" if signed else f"{value:.4f} [{low:.3f}, {high:.3f}]"
