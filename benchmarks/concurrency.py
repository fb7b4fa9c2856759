"""Concurrent load, measured with opensearch-benchmark: BM25 vs the rerank pipeline, and a model swap under load.

Uses the field's own load tool, installed once into its own virtualenv
(``~/.cache/reranker/osb-venv``, opensearch-benchmark 2.4.0 from PyPI), with the
custom workload in ``benchmarks/osb/`` (its parameter source draws test-split
queries from a file this script writes; nothing of the dataset is committed).

1. deploys ``--model`` behind the pipeline ``osb-rerank`` on the main job's index;
2. ``side-by-side``: ``--clients`` clients for ``--duration`` s on BM25 alone,
   then the same on the pipeline (top ``--k`` reranked);
3. ``rerank-only`` again, while this script deploys ``--swap-to`` (register,
   upload, deploy, test prediction, pipeline switch, undeploy of the replaced
   model, as `reranker run` does) a quarter into the run: the error rate must
   stay 0;
4. ``rerank-only`` once more with ``--baseline`` behind the pipeline (default:
   the teacher's full-size MiniLM-L6 cross-encoder, fp32), so the shipped
   student's throughput is reported as a ratio to the model it was cut from.

Writes ``benchmarks/results/concurrency.json`` (throughput, p50/p90/p99, error
rate per task; swap timings) and ``concurrency.png``. Needs `make run` first.

    .venv/bin/python benchmarks/concurrency.py [--clients 20] [--duration 60]
"""
from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from reranker_core.config import load_config, override  # noqa: E402
from reranker_core.files import atomic_write, write_json_atomic  # noqa: E402
from reranker_core.model_zip import validate_zip  # noqa: E402
from reranker_plugin.connection import connect  # noqa: E402
from reranker_plugin.mlcommons.client import MLCommons  # noqa: E402
from reranker_plugin.mlcommons.deploy import deploy  # noqa: E402
from training.datasets import load_dataset  # noqa: E402
from training.evaluate import judged_lists  # noqa: E402

OSB_VERSION = "2.4.0"
OSB_VENV = Path.home() / ".cache/reranker/osb-venv"
PIPELINE = "osb-rerank"
METRICS = {"Mean Throughput": "throughput_ops_s", "50th percentile latency": "p50_ms",
           "90th percentile latency": "p90_ms", "99th percentile latency": "p99_ms", "error rate": "error_rate_pct"}


def opensearch_benchmark() -> Path:
    """The opensearch-benchmark executable, installed into its own virtualenv on first use."""
    exe = OSB_VENV / "bin/opensearch-benchmark"
    if not exe.is_file():
        print(f"installing opensearch-benchmark {OSB_VERSION} into {OSB_VENV} (once, ~2 min)", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(OSB_VENV)], check=True)
        subprocess.run([str(OSB_VENV / "bin/pip"), "install", "-q", f"opensearch-benchmark=={OSB_VERSION}"],
                       check=True)
    return exe


def run_osb(exe: Path, procedure: str, params: dict, url: str, results: Path) -> dict[str, dict[str, float]]:
    """One offline benchmark-only run of our workload; per-task metrics from its CSV results."""
    params_file = results.with_suffix(".params.json")  # a file: field lists would break key:value,... syntax
    write_json_atomic(params_file, params)
    host = url.split("://", 1)[-1].rstrip("/")
    subprocess.run([str(exe), "run", "--offline", "--pipeline=benchmark-only", f"--target-hosts={host}",
                    f"--workload-path={ROOT / 'benchmarks/osb'}", f"--test-procedure={procedure}",
                    f"--workload-params={params_file}", "--results-format=csv", f"--results-file={results}",
                    "--kill-running-processes"], check=True)
    tasks: dict[str, dict[str, float]] = {}
    with results.open(encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if row["Task"] and row["Metric"] in METRICS:
                tasks.setdefault(row["Task"], {})[METRICS[row["Metric"]]] = round(float(row["Value"]), 2)
    return tasks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=None)
    parser.add_argument("--data", default=str(ROOT.parent / "shared/data/homedepot/train.csv.zip"))
    parser.add_argument("--kind", default="homedepot")
    parser.add_argument("--model", type=Path, default=ROOT / "runs/student-int8.zip", help="Zip served first.")
    parser.add_argument("--swap-to", type=Path, default=ROOT / "runs/student.zip", help="Zip deployed under load.")
    parser.add_argument("--baseline", type=Path, default=ROOT / "runs/teacher/cross_encoder.zip",
                        help="Zip measured last, alone behind the pipeline, for the throughput ratio.")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--duration", type=int, default=60, help="Seconds measured per task.")
    parser.add_argument("--warmup", type=int, default=10, help="Seconds of warm-up per task, not measured.")
    parser.add_argument("--k", type=int, default=20, help="Hits per search (all reranked).")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results")
    args = parser.parse_args()

    for path in (args.model, args.swap_to, args.baseline):
        if not path.is_file():
            sys.exit(f"error: {path} is missing — run `make run` first or pass --model / --swap-to / --baseline")
    config = load_config(args.config)
    config = override(config, data=override(config.data, path=args.data, kind=args.kind))
    client = connect(config.cluster)
    exe = opensearch_benchmark()
    args.out.mkdir(parents=True, exist_ok=True)

    dataset = load_dataset(config.data.kind, Path(config.data.path), config.data.grade_map, None)
    lists = judged_lists(dataset, "test", config.template, config.data.split_fractions, config.data.split_salt)
    queries_file = args.out / "osb-queries.json"  # held-out queries; under results/, never committed
    write_json_atomic(queries_file, [j.query for j in lists])

    cfg = override(config.deploy, model_name=PIPELINE, pipeline=PIPELINE, document_fields=config.document_fields,
                   undeploy_previous=True)  # as `reranker run` deploys: the replaced model is freed under load
    first = deploy(client, validate_zip(args.model), cfg)
    params = {"queries_file": str(queries_file), "index": cfg.index, "fields": list(cfg.document_fields),
              "size": args.k, "pipeline": PIPELINE, "clients": args.clients, "duration": args.duration,
              "warmup": args.warmup}
    side = run_osb(exe, "side-by-side", params, config.cluster.url, args.out / "osb-side-by-side.csv")

    swap: dict[str, float | str] = {}

    def swap_model() -> None:
        time.sleep(args.warmup + args.duration / 4)
        started = time.monotonic()
        result = deploy(connect(config.cluster), validate_zip(args.swap_to), cfg)
        swap.update(model_id=result.model_id, seconds=round(time.monotonic() - started, 1),
                    at_s=round(args.duration / 4, 1))

    swapper = threading.Thread(target=swap_model)
    osb_started = time.monotonic()
    swapper.start()
    under_swap = run_osb(exe, "rerank-only", params, config.cluster.url, args.out / "osb-swap.csv")
    swapper.join()
    baseline = deploy(client, validate_zip(args.baseline), cfg)
    base_run = run_osb(exe, "rerank-only", params, config.cluster.url, args.out / "osb-baseline.csv")
    ml = MLCommons(client)  # free the node: ML Commons caps deployed models per node
    client.search_pipeline.delete(id=PIPELINE, ignore=[404])
    for model_id in {first.model_id, swap.get("model_id"), baseline.model_id} - {None}:
        ml.delete(str(model_id))
    shipped_rate = side.get("rerank", {}).get("throughput_ops_s", 0.0)
    base_rate = base_run.get("rerank", {}).get("throughput_ops_s", 0.0)

    results = {"clients": args.clients, "duration_s": args.duration, "warmup_s": args.warmup, "k": args.k,
               "queries": len(lists), "model": {"zip": str(args.model), "model_id": first.model_id},
               "swap_to": {"zip": str(args.swap_to), **swap}, "osb_version": OSB_VERSION,
               "side_by_side": side, "rerank_during_swap": under_swap.get("rerank", {}),
               "baseline": {"zip": str(args.baseline), "rerank": base_run.get("rerank", {})},
               "throughput_ratio_model_to_baseline": round(shipped_rate / base_rate, 2) if base_rate else None,
               "swap_run_wall_s": round(time.monotonic() - osb_started, 1)}
    write_json_atomic(args.out / "concurrency.json", results)
    _plot(results, args.out / "concurrency.png")
    print(json.dumps(results, indent=2))


def _plot(results: dict, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    runs = {"BM25": results["side_by_side"].get("bm25", {}), "rerank": results["side_by_side"].get("rerank", {}),
            "rerank, model swapped": results["rerank_during_swap"],
            "rerank, baseline": results.get("baseline", {}).get("rerank", {})}
    fig = Figure(figsize=(10, 3.8), dpi=120, layout="constrained")
    FigureCanvasAgg(fig)
    left, right = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    names = list(runs)
    left.bar(names, [runs[n].get("throughput_ops_s", 0) for n in names], color=["gray", "C0", "C1", "C2"])
    left.set_ylabel("searches / s")
    left.set_yscale("log")
    left.set_title("throughput")
    width = 0.25
    for i, q in enumerate(("p50_ms", "p90_ms", "p99_ms")):
        right.bar([x + (i - 1) * width for x in range(len(names))], [runs[n].get(q, 0) for n in names], width,
                  label=q.split("_")[0])
    right.set_xticks(range(len(names)), names)
    right.set_yscale("log")
    right.set_ylabel("latency (ms)")
    right.set_title("latency (errors: " + ", ".join(f"{runs[n].get('error_rate_pct', '?')}%" for n in names) + ")")
    right.legend(fontsize=7)
    fig.suptitle(f"opensearch-benchmark {results['osb_version']}: {results['clients']} clients x "
                 f"{results['duration_s']} s, top-{results['k']} reranked")
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))


if __name__ == "__main__":
    main()
