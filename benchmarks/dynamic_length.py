"""Dynamic length: what a longer product template costs a reranked page (issue 26, ei-SRC's dynamic-length inputs).

A cross-encoder's cost grows with the tokens it reads, so a zip that padded
every pair to ``template.max_tokens`` would make a title-only page pay for the
longest template. The exported ``tokenizer.json`` truncates to
``max_tokens`` and sets no padding; this script checks that for 64 / 128 / 256
tokens and measures, for one student exported at each length:

1. the ``tokenizer.json`` block (truncation length, padding none);
2. the pair lengths: a title + description page (real long text: the ESCI
   sample's 16 products, HTML tags stripped) and a title-only page;
3. onnxruntime in process, side by side on the same pages: each pair at its
   own length (no padding), one batch padded to the page's longest pair, and
   one batch padded to ``max_tokens`` (what a fixed-length zip would cost);
4. ML Commons' ``_predict`` on the node (one query, the page's documents),
   the zip deployed as it ships (int8).

Writes ``benchmarks/results/dynamic_length.json`` and ``.png``. Needs a
student checkpoint (``runs/student``) and a node with ML Commons; run it on a
quiet machine.

    .venv/bin/python benchmarks/dynamic_length.py [--student runs/student] [--lengths 64,128,256]
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from reranker_core.config import load_config, override  # noqa: E402
from reranker_core.files import atomic_write, write_json_atomic  # noqa: E402
from reranker_core.model_zip import TOKENIZER_FILE, read_member, validate_zip  # noqa: E402
from reranker_plugin.connection import connect  # noqa: E402
from reranker_plugin.mlcommons.client import MLCommons  # noqa: E402
from reranker_plugin.mlcommons.deploy import deploy  # noqa: E402
from training.datasets import read_catalog  # noqa: E402
from training.export import export_cross_encoder, quantize_int8  # noqa: E402
from training.onnx_scorer import OnnxZipScorer  # noqa: E402
from training.student import CrossEncoder  # noqa: E402

ESCI = ROOT / "tests" / "fixtures" / "esci"
PAGES = ("title + description", "title")


def esci_page() -> tuple[str, dict[str, list[str]]]:
    """The ESCI sample's query and its 16 products as long (title | description) and short (title) documents."""
    with (ESCI / "test-sample.csv").open(encoding="utf-8") as f:
        query = next(csv.DictReader(f))["query"]
    products = read_catalog(ESCI / "sample-products.jsonl").values()

    def clean(text: str) -> str:
        return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", text or "")).strip()
    long = [f"{clean(p.get('title', ''))} | {clean(p.get('description', ''))}" for p in products]
    return query, {PAGES[0]: long, PAGES[1]: [clean(p.get("title", "")) for p in products]}


def median_ms(fn, repeats: int) -> float:
    """Median wall time of ``fn()`` in ms, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(times), 2)


def local_timings(scorer: OnnxZipScorer, encoded: list, max_tokens: int, repeats: int) -> dict[str, float]:
    """Per-page ms in onnxruntime over the page's ``encoded`` pairs: each at its own length, one batch padded to
    the page's longest, one batch padded to max_tokens."""
    import numpy as np

    names = [i.name for i in scorer.session.get_inputs()]

    def batch(width: int) -> dict[str, np.ndarray]:
        arrays = {"input_ids": [], "attention_mask": [], "token_type_ids": []}
        for e in encoded:
            pad = width - len(e.ids)
            arrays["input_ids"].append(e.ids + [0] * pad)
            arrays["attention_mask"].append(e.attention_mask + [0] * pad)
            arrays["token_type_ids"].append(e.type_ids + [0] * pad)
        return {k: np.asarray(v, dtype=np.int64) for k, v in arrays.items() if k in names}

    def one_by_one() -> None:
        for e in encoded:
            scorer.session.run(None, {k: np.asarray([v], dtype=np.int64) for k, v in
                                      (("input_ids", e.ids), ("attention_mask", e.attention_mask),
                                       ("token_type_ids", e.type_ids)) if k in names})
    longest, fixed = batch(max(len(e.ids) for e in encoded)), batch(max_tokens)
    return {"each pair at its own length": median_ms(one_by_one, repeats),
            "one batch, padded to the page's longest": median_ms(lambda: scorer.session.run(None, longest), repeats),
            "one batch, padded to max_tokens": median_ms(lambda: scorer.session.run(None, fixed), repeats)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--student", type=Path, default=ROOT / "runs" / "student", help="train-student checkpoint")
    parser.add_argument("--lengths", default="64,128,256", help="template.max_tokens values to export")
    parser.add_argument("--repeats", type=int, default=15, help="timed calls per measurement (median)")
    parser.add_argument("--config", type=Path, default=None, help="reranker.yaml (cluster URL)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "dynamic_length.json")
    args = parser.parse_args()
    lengths = [int(x) for x in args.lengths.split(",")]
    config = load_config(args.config)
    client = connect(config.cluster)
    ml = MLCommons(client)
    student = CrossEncoder.load(args.student)
    query, pages = esci_page()
    limit = student.model.config.max_position_embeddings
    rows = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        for length in lengths:
            if length > limit:
                sys.exit(f"error: --lengths {length} is more than the {limit} positions {args.student} reads")
            fp32 = Path(tmp) / f"L{length}.zip"
            export_cross_encoder(student.model, student.tokenizer, fp32, [(query, pages[PAGES[0]][0])], length)
            shipped = quantize_int8(fp32, Path(tmp) / f"L{length}-int8.zip")
            block = json.loads(read_member(shipped, TOKENIZER_FILE))
            scorer = OnnxZipScorer(shipped)
            row = {"max_tokens": length, "zip_bytes": shipped.stat().st_size,
                   "tokenizer_truncation_max_length": (block.get("truncation") or {}).get("max_length"),
                   "tokenizer_padding": block.get("padding"), "pages": {}}
            cfg = override(config.deploy, model_name=f"bench-length-{length}", pipeline=f"bench-length-{length}",
                           document_fields=("title",), undeploy_previous=False, default_pipeline=False)
            model_id = deploy(client, validate_zip(shipped), cfg).model_id
            try:
                for page, docs in pages.items():
                    encoded = [scorer.tokenizer.encode(query, d) for d in docs]
                    tokens = [len(e.ids) for e in encoded]
                    row["pages"][page] = {
                        "documents": len(docs), "pair_tokens_mean": round(statistics.mean(tokens), 1),
                        "pair_tokens_max": max(tokens),
                        "onnxruntime_ms": local_timings(scorer, encoded, length, args.repeats),
                        "ml_commons_predict_ms": median_ms(lambda docs=docs: ml.predict(model_id, query, docs),
                                                           args.repeats)}
            finally:
                client.search_pipeline.delete(id=cfg.pipeline, ignore=[404])
                ml.delete(model_id)
            rows.append(row)
            print(json.dumps(row), flush=True)
    result = {"student": str(args.student), "query": query, "lengths": lengths, "repeats": args.repeats,
              "machine": f"{os.cpu_count()} cores", "date": time.strftime("%Y-%m-%d"),
              "wall_s": round(time.monotonic() - started, 1), "rows": rows}
    write_json_atomic(args.out, result)
    plot(result, args.out.with_suffix(".png"))
    print(f"wrote {args.out} and {args.out.with_suffix('.png')}")


def plot(result: dict, target: Path) -> None:
    """ML Commons and onnxruntime ms per page against max_tokens, long and short pages."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lengths = [r["max_tokens"] for r in result["rows"]]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, page in zip(axes, PAGES):
        stats = [r["pages"][page] for r in result["rows"]]
        ax.plot(lengths, [s["ml_commons_predict_ms"] for s in stats], "o-", label="ML Commons _predict")
        for name in stats[0]["onnxruntime_ms"]:
            ax.plot(lengths, [s["onnxruntime_ms"][name] for s in stats], "s--", label=f"onnxruntime: {name}")
        ax.set_title(f"{page} ({stats[0]['documents']} documents)")
        ax.set_xlabel("template.max_tokens")
        ax.set_xticks(lengths)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("ms per page (median)")
    axes[0].legend(fontsize=7)
    fig.suptitle("Dynamic length: cost of a reranked page by template length (int8 student)")
    fig.tight_layout()
    atomic_write(target, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))


if __name__ == "__main__":
    main()
