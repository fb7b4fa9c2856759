"""Latency frontier: what reranking the top K hits adds to a search, against each model's quality.

For every model zip (default: the main job's shipped student in fp32 and int8
beside its teacher's MiniLM-L6 cross-encoder in fp32 and int8) this

1. deploys the zip behind its own rerank pipeline on the main job's index;
2. times, for K in ``--k``, the same test-split queries through BM25 alone and
   through every pipeline, interleaved in one loop (rotating order), so load
   drifts hit all systems alike; reports p50/p95/p99 of the absolute latency and
   of the added latency (pipeline minus BM25, paired per query);
3. scores the zip offline on the whole test split (NDCG@5 with a 95% bootstrap
   interval), so quality can be plotted against latency;
4. profiles where a reranked page's time goes for the first model: the ONNX
   graph alone in onnxruntime (the same runtime ML Commons embeds), ML Commons'
   ``_predict`` on the same hits, and the whole pipeline; plus the token-length
   distribution of the (query, title) pairs the pipeline sends.

Writes ``benchmarks/results/search_latency.json`` and ``search_latency.png``.
Needs the main job's node, index and zips (`make run`); run it on a quiet
machine — another busy process on 2 cores doubles every number.

    .venv/bin/python benchmarks/search_latency.py [--queries 200] [--k 10,20,50]
"""
from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from reranker_core.config import load_config, override  # noqa: E402
from reranker_core.files import atomic_write, write_json_atomic  # noqa: E402
from reranker_core.model_zip import validate_zip  # noqa: E402
from reranker_plugin.connection import connect  # noqa: E402
from reranker_plugin.jobs.search import search  # noqa: E402
from reranker_plugin.mlcommons.client import MLCommons  # noqa: E402
from reranker_plugin.mlcommons.deploy import deploy  # noqa: E402
from training.bootstrap import intervals, per_query  # noqa: E402
from training.datasets import load_dataset  # noqa: E402
from training.evaluate import judged_lists, ranked_lists  # noqa: E402
from training.onnx_scorer import OnnxZipScorer, ZipScorer  # noqa: E402

RUNS = ROOT / "runs"


def percentiles(values: list[float]) -> dict[str, float]:
    """Nearest-rank p50/p95/p99 (no interpolation: every number was measured)."""
    ordered = sorted(values)
    pick = lambda q: ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]  # noqa: E731
    return {"p50": round(pick(0.50), 2), "p95": round(pick(0.95), 2), "p99": round(pick(0.99), 2)}


def default_models() -> dict[str, Path]:
    """The main job's shipped student (fp32 and int8) beside its teacher's MiniLM-L6 cross-encoder (fp32 and
    int8, quantized here once): the small student's cost against the full-size model it was cut from."""
    from training.export import quantize_int8

    teacher_zip = RUNS / "teacher" / "cross_encoder.zip"
    teacher_int8 = RUNS / "teacher-int8.zip"
    if teacher_zip.is_file() and not teacher_int8.is_file():
        quantize_int8(teacher_zip, teacher_int8)
    return {"student fp32": RUNS / "student.zip", "student int8": RUNS / "student-int8.zip",
            "L6 fp32": teacher_zip, "L6 int8": teacher_int8}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=None, help="reranker.yaml (default: ./reranker.yaml)")
    parser.add_argument("--data", default=str(ROOT.parent / "shared/data/homedepot/train.csv.zip"))
    parser.add_argument("--kind", default="homedepot")
    parser.add_argument("--model", action="append", default=[], metavar="NAME=ZIP",
                        help="A model to time (repeatable; default: the main job's student and its teacher's "
                             "MiniLM-L6 cross-encoder, each fp32 and int8).")
    parser.add_argument("--k", default="10,20,50", help="Hits reranked per search.")
    parser.add_argument("--queries", type=int, default=200, help="Test-split queries timed per K.")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results")
    args = parser.parse_args()

    config = load_config(args.config)
    config = override(config, data=override(config.data, path=args.data, kind=args.kind))
    models = {name: Path(path) for name, path in (m.split("=", 1) for m in args.model)} or default_models()
    for name, path in models.items():
        if not path.is_file():
            sys.exit(f"error: {path} ({name}) is missing — run `make run` first or pass --model NAME=ZIP")
    ks = sorted(int(k) for k in args.k.split(","))
    fields = config.document_fields
    client = connect(config.cluster)
    index = config.deploy.index

    dataset = load_dataset(config.data.kind, Path(config.data.path), config.data.grade_map, None)
    lists = judged_lists(dataset, "test", config.template, config.data.split_fractions, config.data.split_salt)
    queries = sorted({j.query for j in lists})[: args.queries]

    # 1. deploy every zip behind its own pipeline
    pipelines, sizes = {}, {}
    for i, (name, path) in enumerate(models.items()):
        artifact = validate_zip(path)
        slug = name.lower().replace(" ", "-")
        cfg = override(config.deploy, model_name=f"bench-{slug}", pipeline=f"bench-{slug}", document_fields=fields)
        pipelines[name] = (deploy(client, artifact, cfg).model_id, cfg.pipeline)
        sizes[name] = {"bytes": artifact.size_bytes, "precision": artifact.precision, "layers": artifact.layers,
                       "max_tokens": artifact.max_length}
        print(f"deployed {name}: {path} ({artifact.size_bytes / 1e6:.1f} MB) as pipeline {cfg.pipeline}", flush=True)

    # 2. interleaved timing
    systems = ["BM25", *models]
    latency: dict[int, dict[str, list[float]]] = {}
    for k in ks:
        timed = {s: [] for s in systems}
        for query in queries[:5]:  # warm-up, not timed
            for s in systems:
                search(client, index, query, fields, k, pipelines[s][1] if s in pipelines else None)
        order = itertools.cycle([systems[i:] + systems[:i] for i in range(len(systems))])
        for query, rotation in zip(queries, order):
            for s in rotation:
                started = time.perf_counter()
                search(client, index, query, fields, k, pipelines[s][1] if s in pipelines else None)
                timed[s].append((time.perf_counter() - started) * 1000)
        latency[k] = timed
        print(f"K={k}: " + ", ".join(f"{s} p50 {percentiles(v)['p50']:.1f} ms" for s, v in timed.items()), flush=True)

    # 3. quality of each zip on the test split (offline: the same graph and tokenizer the node runs)
    quality = {}
    for name, path in models.items():
        found = intervals(per_query(ranked_lists(ZipScorer(path), lists),
                                    relevant_threshold=config.data.relevant_threshold))
        quality[name] = {m: list(found[m]) for m in ("ndcg@5", "pairwise_accuracy")}

    # 4. where the time goes, for the first model at K=20 (or the closest K)
    profile = _profile(client, index, fields, queries[:50], next(iter(models.items())), pipelines,
                       min(ks, key=lambda k: abs(k - 20)))
    for model_id, pipeline in pipelines.values():  # free the node: ML Commons caps deployed models per node
        client.search_pipeline.delete(id=pipeline, ignore=[404])
        MLCommons(client).delete(model_id)

    results = {
        "machine": "2 cores" if _cores() == 2 else f"{_cores()} cores",
        "queries": len(queries), "test_queries_for_quality": len(lists), "index": index, "fields": list(fields),
        "k": ks, "models": {name: {"zip": str(path), **sizes[name], "quality": quality[name]}
                            for name, path in models.items()},
        "latency_ms": {str(k): {s: percentiles(v) for s, v in timed.items()} for k, timed in latency.items()},
        "added_ms": {str(k): {s: percentiles([r - b for r, b in zip(timed[s], timed["BM25"])]) for s in models}
                     for k, timed in latency.items()},
        "profile": profile,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(args.out / "search_latency.json", results)
    _plot(results, args.out / "search_latency.png")
    for k in ks:
        for s in models:
            added = results["added_ms"][str(k)][s]
            print(f"K={k:>3} {s:<10} added p50 {added['p50']:6.1f} p95 {added['p95']:6.1f} p99 {added['p99']:6.1f} ms"
                  f"   NDCG@5 {quality[s]['ndcg@5'][0]:.4f}")
    print(f"wrote {args.out / 'search_latency.json'} and {args.out / 'search_latency.png'}")


def _cores() -> int:
    import os

    return len(os.sched_getaffinity(0))


def _profile(client, index: str, fields: tuple[str, ...], queries: list[str], model: tuple[str, Path],
             pipelines: dict, k: int) -> dict:
    """Per-hit milliseconds: the graph alone, ML Commons' _predict, and the whole pipeline, on the same hits."""
    name, path = model
    model_id, pipeline = pipelines[name]
    scorer = OnnxZipScorer(path)  # onnxruntime's default threads, as in ML Commons
    ml = MLCommons(client)
    graph, predict, pipe, plain, lengths = [], [], [], [], []
    pairs: list[tuple[str, str]] = []  # the first queries' pairs, timed again at each optimization level
    for n, query in enumerate(queries):
        hits = search(client, index, query, fields, k, None)
        texts = [h.text for h in hits]
        if not texts:
            continue
        if n < 10:
            pairs += [(query, t) for t in texts]
        lengths += [len(scorer.tokenizer.encode(query, t).ids) for t in texts]
        started = time.perf_counter()
        for text in texts:  # one pair per run, as ML Commons does
            scorer.score(query, [text])
        graph.append((time.perf_counter() - started) * 1000 / len(texts))
        started = time.perf_counter()
        ml.predict(model_id, query, texts)
        predict.append((time.perf_counter() - started) * 1000 / len(texts))
        for sink, target in ((plain, None), (pipe, pipeline)):
            started = time.perf_counter()
            search(client, index, query, fields, k, target)
            sink.append((time.perf_counter() - started) * 1000)
    levels = _optimization_levels(scorer, path, pairs)
    per_hit = {"onnx graph (onnxruntime, in process)": percentiles(graph),
               "ML Commons _predict (tokenize + DJL + graph)": percentiles(predict),
               "rerank pipeline minus BM25": percentiles([(p - b) / k for p, b in zip(pipe, plain)])}
    return {"model": name, "k": k, "queries": len(graph), "per_hit_ms": per_hit,
            "graph_ms_by_onnxruntime_optimization": levels,
            "pair_tokens": percentiles(lengths) | {"max": max(lengths)}}


def _optimization_levels(scorer: OnnxZipScorer, path: Path, pairs: list[tuple[str, str]]) -> dict[str, float]:
    """Median per-pair graph time at each onnxruntime optimization level (ML Commons' session uses the default, all).

    Replaces ``scorer``'s session: call it last.
    """
    import statistics

    import onnxruntime as ort

    from reranker_core.model_zip import read_member

    graph = read_member(path, scorer.artifact.onnx_name)
    found = {}
    for name, level in (("disabled", ort.GraphOptimizationLevel.ORT_DISABLE_ALL),
                        ("basic", ort.GraphOptimizationLevel.ORT_ENABLE_BASIC),
                        ("all (default)", ort.GraphOptimizationLevel.ORT_ENABLE_ALL)):
        options = ort.SessionOptions()
        options.graph_optimization_level = level
        scorer.session = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
        scorer.score(pairs[0][0], [pairs[0][1]])  # the first run allocates
        times = []
        for query, text in pairs:
            started = time.perf_counter()
            scorer.score(query, [text])
            times.append((time.perf_counter() - started) * 1000)
        found[name] = round(statistics.median(times), 2)
    return found


def _plot(results: dict, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4), dpi=120, layout="constrained")
    FigureCanvasAgg(fig)
    left, right = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    ks = results["k"]
    k_mid = str(min(ks, key=lambda k: abs(k - 20)))
    for name, info in results["models"].items():
        added = [results["added_ms"][str(k)][name]["p50"] for k in ks]
        left.plot(ks, added, marker="o", label=name)
        value, low, high = info["quality"]["ndcg@5"]
        x = results["added_ms"][k_mid][name]["p50"]
        right.errorbar([x], [value], yerr=[[value - low], [high - value]], marker="o", capsize=3, label=name)
    left.axhline(60, linestyle="--", color="gray", label="60 ms budget")
    left.set_xlabel("hits reranked (K)")
    left.set_ylabel("added latency p50 (ms)")
    left.set_title("cost of reranking vs K")
    left.legend(fontsize=7)
    right.set_xlabel(f"added latency p50 at K={k_mid} (ms)")
    right.set_ylabel("NDCG@5, test split (95% interval)")
    right.set_title("quality vs latency")
    right.legend(fontsize=7)
    fig.suptitle(f"{results['machine']}, {results['queries']} queries interleaved with BM25")
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))


if __name__ == "__main__":
    main()
