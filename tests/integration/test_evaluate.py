"""Evaluate BM25 vs a deployed rerank pipeline through the real node, on judged-only lists."""
from __future__ import annotations


import pytest

from reranker_core.config import DeployConfig
from reranker_core.errors import ClusterError
from reranker_core.model_zip import validate_zip
from reranker_plugin.jobs.evaluate import evaluate_through_cluster, judged_search, plot_comparison
from reranker_plugin.jobs.search import search
from reranker_plugin.mlcommons.deploy import deploy
from training.metrics import evaluate_rankings

pytestmark = pytest.mark.integration

FIELDS = ("title",)
# Judged products per query (ids of tests/integration/conftest.py PRODUCTS). Products that do not
# match the query are labelled 0, so ties among them cannot change any metric; "p-gone" is never indexed.
LISTS = {
    "cordless drill": {"p0": 1.0, "p1": 0.9, "p2": 0.8, "p4": 0.5, "p6": 0.3, "p8": 0.6, "p9": 0.0, "p15": 0.0,
                       "p-gone": 0.2},
    "white paint": {"p9": 1.0, "p10": 0.7, "p11": 0.4, "p12": 0.0, "p13": 0.6, "p0": 0.0},
    "pipe wrench": {"p23": 1.0, "p21": 0.5, "p22": 0.4, "p3": 0.0, "p16": 0.0},
}


def local_bm25_list(client, index: str, query: str, labels: dict[str, float]):
    """(labels, scores) from an unfiltered BM25 search: non-matching judged products score 0, missing -1."""
    scores = {hit.doc_id: hit.score for hit in search(client, index, query, FIELDS, 30, None)}
    existing = {h["_id"] for h in client.mget(index=index, body={"ids": list(labels)})["docs"] if h["found"]}
    order = sorted(labels, key=lambda d: -scores.get(d, 0.0 if d in existing else -1.0))
    return [labels[d] for d in order], [scores.get(d, 0.0 if d in existing else -1.0) for d in order]


def test_bm25_vs_pipeline_metrics_plot_and_json(client, products_index, unique_names, tiny_zip, tmp_path):
    cfg = DeployConfig(model_name=unique_names["model"], index=products_index, pipeline=unique_names["pipeline"],
                       document_fields=FIELDS)
    deploy(client, validate_zip(tiny_zip), cfg)

    ids = judged_search(client, products_index, "cordless drill", list(LISTS["cordless drill"]), FIELDS, None)
    assert set(ids) == set(LISTS["cordless drill"]) - {"p-gone"}  # every indexed judged product, nothing else
    assert ids[-2:] in (["p9", "p15"], ["p15", "p9"])  # non-matching ones last, at score 0
    reranked = judged_search(client, products_index, "cordless drill", list(LISTS["cordless drill"]), FIELDS,
                             unique_names["pipeline"])
    assert set(reranked) == set(ids)

    calls: list[tuple[int, int]] = []
    results = evaluate_through_cluster(client, products_index, LISTS, FIELDS, [None, unique_names["pipeline"]],
                                       progress=lambda done, total: calls.append((done, total)))
    assert list(results) == ["bm25", unique_names["pipeline"]]
    assert calls == [(i, 6) for i in range(1, 7)]
    assert results["bm25"] != results[unique_names["pipeline"]]
    assert results["bm25"]["queries"] == 3.0

    local = evaluate_rankings([local_bm25_list(client, products_index, q, dict(lab)) for q, lab in LISTS.items()])
    assert results["bm25"] == pytest.approx(local, abs=1e-12)

    png = tmp_path / "out" / "comparison.png"
    plot_comparison({s: {k: (v, v - 0.01, v + 0.01) for k, v in m.items() if k != "queries"}
                     for s, m in results.items()}, png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    assert [p.name for p in png.parent.iterdir()] == ["comparison.png"]  # no temp file left


def test_missing_index_or_pipeline_is_a_cluster_error(client, products_index):
    with pytest.raises(ClusterError, match="no-such-index"):
        judged_search(client, "no-such-index", "drill", ["p0"], FIELDS, None)
    with pytest.raises(ClusterError, match="no-such-pipeline"):
        evaluate_through_cluster(client, products_index, {"drill": {"p0": 1.0}}, FIELDS, ["no-such-pipeline"])
