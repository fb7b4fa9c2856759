"""Augmentation throughput: the local engine vs the ray engine with 1 and 2 worker nodes, side by side.

Each run mines the same logged queries (the dataset's most frequent training
queries) from the live index at ``--top-k`` and labels them with the same
teacher, into a fresh folder; pairs/s is end to end (reading the log,
retrieval, labeling, writing). The Ray runs use a local cluster built here: a
head node that runs no work plus N one-CPU worker nodes, one teacher actor per
worker. On a 2-core machine little gain is expected: the point is the
overhead, and that the outputs are equal.

    .venv/bin/python benchmarks/ray_throughput.py --teacher runs/teacher --queries 300

Writes ``benchmarks/results/ray_throughput.json`` and ``.png``.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from reranker_core.config import load_config  # noqa: E402
from reranker_core.files import atomic_write, write_json_atomic  # noqa: E402
from training.datasets import load_dataset, split_of  # noqa: E402
from training.pairs import read_pairs  # noqa: E402

CLI = [sys.executable, "-c", "from reranker_plugin.cli import main; main()"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=None, help="reranker.yaml (default: ./reranker.yaml)")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared/data/homedepot/train.csv.zip")
    parser.add_argument("--kind", default="homedepot")
    parser.add_argument("--teacher", type=Path, default=Path("runs/teacher"))
    parser.add_argument("--queries", type=int, default=300, help="Logged queries to mine.")
    parser.add_argument("--top-k", type=int, default=10)
    parser.add_argument("--workers", default="1,2", help="Ray worker-node counts to try.")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results")
    args = parser.parse_args()

    config = load_config(args.config)
    dataset = load_dataset(args.kind, args.data, config.data.grade_map, None)
    seen: dict[str, None] = {}
    for j in dataset.judgments:
        if split_of(j.query, config.data.split_fractions, config.data.split_salt) == "train":
            seen.setdefault(j.query)
    queries = list(seen)[:args.queries]
    work = Path(tempfile.mkdtemp(prefix="ray-bench-"))
    log = work / "log.jsonl"
    log.write_text("".join(json.dumps({"user_query": q}) + "\n" for q in queries), encoding="utf-8")
    common = ["augment", str(args.teacher.resolve()), "--log", str(log), "--top-k", str(args.top_k),
              "--max-queries", str(len(queries))]
    runs = [_run("local", 0, common + ["--engine", "local"], work)]
    for workers in (int(w) for w in args.workers.split(",")):
        runs.append(_ray_run(workers, common, work))
    reference = _pairs(work / "local")
    for run in runs:
        got = _pairs(work / run["name"])
        run["equal_to_local"] = got.keys() == reference.keys() and all(
            abs(got[k] - reference[k]) < 1e-4 for k in reference)
    shutil.rmtree(work, ignore_errors=True)
    for run in runs:
        run["ratio_to_local"] = round(run["pairs_per_second"] / runs[0]["pairs_per_second"], 2)
    data = {"queries": len(queries), "top_k": args.top_k, "teacher": str(args.teacher), "cpus": os.cpu_count(),
            "runs": runs}
    args.out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(args.out / "ray_throughput.json", data)
    _plot(data, args.out / "ray_throughput.png")
    for run in runs:
        print(f"{run['name']:>8}: {run['pairs']} pairs in {run['seconds']:.1f}s = {run['pairs_per_second']:.1f} "
              f"pairs/s ({run['ratio_to_local']:.2f}x local); equal to local: {run['equal_to_local']}")


def _run(name: str, workers: int, args: list[str], work: Path, extra: list[str] = ()) -> dict:
    started = time.monotonic()
    done = subprocess.run([*CLI, *args, *extra, "--output", str(work / name)], capture_output=True, text=True)
    seconds = time.monotonic() - started
    if done.returncode:
        sys.exit(f"{name} failed: {done.stderr[-1000:]}")
    report = json.loads((work / name / "report.json").read_text())
    return {"name": name, "workers": workers, "pairs": report["pairs_total"], "seconds": round(seconds, 1),
            "job_seconds": report["seconds"], "pairs_per_second": round(report["pairs_total"] / seconds, 2)}


def _ray_run(workers: int, common: list[str], work: Path) -> dict:
    """One ray-engine run on a fresh local cluster of ``workers`` one-CPU nodes (startup not timed)."""
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "object_store_memory": 100 * 2**20})
    try:
        for _ in range(workers):
            cluster.add_node(num_cpus=2, object_store_memory=100 * 2**20)  # 1 for the teacher actor, 1 for Ray Data
        cluster.wait_for_nodes()
        engine = ["--ray-address", cluster.address]
        # scoring_actors follows the worker count through a config override file
        cfg = work / f"ray-{workers}.yaml"
        base = Path("reranker.yaml")
        text = base.read_text(encoding="utf-8") if base.is_file() else ""
        cfg.write_text(text + f"\nengine:\n  scoring_actors: {workers}\n", encoding="utf-8")
        return _run(f"ray-{workers}", workers, ["--config", str(cfg), *common], work, engine)
    finally:
        cluster.shutdown()


def _pairs(path: Path) -> dict[tuple[str, str], float]:
    return {(r["query"], r["product_id"]): float(r["teacher_score"]) for r in read_pairs([path])}


def _plot(data: dict, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    runs = data["runs"]
    fig = Figure(figsize=(6, 3.5), dpi=120, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ax.bar([r["name"] for r in runs], [r["pairs_per_second"] for r in runs], color=["gray"] + ["C0"] * (len(runs) - 1))
    ax.set_ylabel("pairs/s, end to end")
    ax.set_title(f"augment: {data['queries']} queries x top-{data['top_k']}, {data['cpus']} CPUs")
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))


if __name__ == "__main__":
    main()
