"""Scaling curve: the small student's quality as its teacher-scored pool grows, budget in proportion.

The paper's claim under test: a student distilled from the teacher keeps
improving as more (query, product) pairs are scored by the teacher, until it
matches its teacher. This benchmark reuses what `reranker run` built (the
teacher, the teacher-scored judged pairs in ``runs/pairs/judged-train.parquet``,
the mined top-K pairs in ``augment.output``, and the distilled student, which
is the curve's last point when it was trained on the whole pool), then for each
fraction in ``--fractions`` trains the configured student (same init, layers
and loss as the main job) on the judged pairs plus that fraction of the mined
queries (whole queries, nested seeded samples) for ``student.epochs`` passes:
the number of optimizer steps grows with the pool, so a flat curve is not
built in. Fraction 0 is the judged pairs alone.

Every student, the teacher and a full-size human-label student (the teacher's
architecture on the human labels only, the paper's baseline) are scored on
the whole test split. The default ``ensemble`` teacher without views *is*
such a student (its cross-encoder: every human label, pointwise + RankNet),
so it is used as is; with another teacher one is trained here, unless
``--full-size-human`` names one. Scores are computed
offline, with 95% bootstrap intervals over queries, and the last point minus
the first as a paired difference. Writes ``benchmarks/results/scaling.json``
and ``scaling.png``; sizes and wall times are recorded with every number.
"""
from __future__ import annotations

import argparse
import dataclasses
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from reranker_core.config import load_config, override  # noqa: E402
from reranker_core.files import atomic_write, write_json_atomic  # noqa: E402
from training.bootstrap import intervals, paired_difference, per_query  # noqa: E402
from training.datasets import load_dataset  # noqa: E402
from training.evaluate import judged_lists, load_scorer, ranked_lists  # noqa: E402
from training.models import read_meta  # noqa: E402
from training.pairs import read_pairs  # noqa: E402
from training.student import StudentExample, train_student  # noqa: E402
from training.teacher import teacher_examples  # noqa: E402

METRICS = ("ndcg@5", "pairwise_accuracy")


def nested_fractions(rows: list[dict], fractions: list[float], seed: int) -> dict[float, list[dict]]:
    """For each fraction, the mined rows of that share of the mined queries; smaller samples nest in larger."""
    by_query: dict[str, list[dict]] = {}
    for row in rows:
        by_query.setdefault(row["query"], []).append(row)
    order = sorted(by_query)
    random.Random(seed).shuffle(order)
    return {f: [r for q in order[:round(f * len(order))] for r in by_query[q]] for f in fractions}


def main_job_pool(config_path: Path | None, data: Path, kind: str):
    """(config, dataset, judged rows, mined rows): what `reranker run` left for the student benchmarks."""
    config = load_config(config_path)
    config = override(config, data=override(config.data, path=str(data), kind=kind))
    dataset = load_dataset(config.data.kind, Path(config.data.path), config.data.grade_map,
                           Path(config.data.catalog) if config.data.catalog else None)
    judged_file, mined_dir = ROOT / "runs/pairs/judged-train.parquet", Path(config.augment.output)
    for needed in (Path(config.teacher.output), judged_file, mined_dir):
        if not needed.exists():
            sys.exit(f"error: {needed} is missing — run `make run` first (this benchmark reuses its pool)")
    return config, dataset, read_pairs([judged_file]), read_pairs([mined_dir])


def examples_of(rows: list[dict]) -> list[StudentExample]:
    return [StudentExample(r["query"], r["text"], float(r["teacher_score"]), r.get("label")) for r in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=None, help="reranker.yaml (default: ./reranker.yaml)")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared/data/homedepot/train.csv.zip")
    parser.add_argument("--kind", default="homedepot")
    parser.add_argument("--fractions", default="0,0.125,0.25,0.5,1",
                        help="Shares of the mined queries added to the judged pairs, one student each.")
    parser.add_argument("--full-size-human", type=Path, default=None,
                        help="A full-size human-label student (checkpoint or zip) to draw as a line; default: the "
                             "teacher's cross-encoder when the teacher is nothing else, else one trained here.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=ROOT / "benchmarks/results/scaling-work")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results")
    args = parser.parse_args()

    started = time.monotonic()
    config, dataset, judged, mined = main_job_pool(args.config, args.data, args.kind)
    teacher_dir, main_student = Path(config.teacher.output), Path(config.student.output)
    fractions = sorted(float(f) for f in args.fractions.split(","))
    samples = nested_fractions(mined, fractions, args.seed)
    lists = judged_lists(dataset, "test", config.template, config.data.split_fractions, config.data.split_salt)
    student_cfg = config.student
    if student_cfg.model == "teacher":
        student_cfg = override(student_cfg, model=str(teacher_dir / "cross_encoder"))
    found_per_query = {}

    def score(name: str, path: Path) -> dict:
        tick = time.monotonic()
        found_per_query[name] = per_query(ranked_lists(load_scorer(path), lists),
                                          relevant_threshold=config.data.relevant_threshold)
        return {"metrics": {k: list(v) for k, v in intervals(found_per_query[name]).items() if k in METRICS},
                "score_seconds": round(time.monotonic() - tick, 1)}

    results = {"teacher": score("teacher", teacher_dir)}
    human_full = args.full_size_human or _human_label_teacher(teacher_dir)
    if human_full is None:
        human_full = args.work / "student-human-full-size"
        if not (human_full / "reranker.json").is_file():
            train = dataset.split("train", config.data.split_fractions, config.data.split_salt)
            human = teacher_examples(train, dataset.products, config.template, "binary", dataset.grade_levels,
                                     None, config.teacher.seed)
            tick = time.monotonic()
            train_student(override(student_cfg, layers=None, loss="pointwise", output=str(human_full)),
                          config.template, [StudentExample(e.query, e.text, e.target[0]) for e in human])
            print(f"full-size human-label student: {time.monotonic() - tick:.0f}s", flush=True)
    results["full-size human-label student"] = score("full-size human", human_full)

    points = []
    for fraction in fractions:
        rows = judged + samples[fraction]
        out = args.work / f"student-{fraction:g}"
        reused = _same_pool(main_student, student_cfg, len(rows)) if fraction == 1 else False
        if reused:
            out = main_student
        elif not (out / "reranker.json").is_file() or read_meta(out).get("examples") != len(rows):
            train_student(override(student_cfg, output=str(out)), config.template, examples_of(rows),
                          provenance={"pool_fraction": fraction})
        meta = read_meta(out)
        entry = {"fraction": fraction, "pool_pairs": len(rows), "mined_pairs": len(samples[fraction]),
                 "queries": len({r["query"] for r in rows}), "steps": meta["steps"], "pairs_seen": meta["pairs_seen"],
                 "checkpoint": str(out), "reused_main_job_student": reused, **score(f"{fraction:g}", out)}
        points.append(entry)
        print(f"fraction {fraction:g}: {entry['pool_pairs']} pairs, {entry['steps']} steps, NDCG@5 "
              f"{entry['metrics']['ndcg@5'][0]:.4f}, pairwise {entry['metrics']['pairwise_accuracy'][0]:.4f}",
              flush=True)
    last, first = f"{fractions[-1]:g}", f"{fractions[0]:g}"
    diff = paired_difference(found_per_query[last], found_per_query[first])
    data = {"dataset": dataset.name, "test_queries": len(lists), "student": dataclasses.asdict(student_cfg),
            "teacher": str(teacher_dir), "full_size_human": str(human_full), "seed": args.seed, "points": points,
            **results, "last - first": {k: list(diff[k]) for k in METRICS},
            "seconds": round(time.monotonic() - started, 1)}
    args.out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(args.out / "scaling.json", data)
    _plot(data, args.out / "scaling.png")
    print(f"last - first: NDCG@5 {data['last - first']['ndcg@5']}; wrote {args.out / 'scaling.json'} and .png")


def _human_label_teacher(teacher_dir: Path) -> Path | None:
    """The teacher's cross-encoder when the teacher is nothing else (ensemble kind, no views): a full-size
    model trained on the human labels alone, i.e. the full-size human-label student."""
    meta = read_meta(teacher_dir)
    members = meta.get("members", [])
    if meta.get("kind") == "ensemble" and len(members) == 1 and members[0].get("kind") == "cross_encoder":
        return teacher_dir / members[0]["source"]
    return None


def _same_pool(student: Path, cfg, pool_pairs: int) -> bool:
    """True when the main job's distilled student was trained with this recipe on the whole pool."""
    if not (student / "reranker.json").is_file():
        return False
    meta = read_meta(student)
    return (meta.get("examples") == pool_pairs and meta.get("loss") == cfg.loss
            and meta.get("layers") == cfg.layers)


def _plot(data: dict, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 3.8), dpi=120, layout="constrained")
    FigureCanvasAgg(fig)
    xs = [p["pool_pairs"] for p in data["points"]]
    for i, metric in enumerate(METRICS):
        ax = fig.add_subplot(1, len(METRICS), i + 1)
        ys = [p["metrics"][metric] for p in data["points"]]
        ax.errorbar(xs, [y[0] for y in ys], yerr=[[y[0] - y[1] for y in ys], [y[2] - y[0] for y in ys]],
                    marker="o", capsize=3, label=f"{data['student']['layers'] or 'all'}-layer student")
        for name, style in (("teacher", "--"), ("full-size human-label student", ":")):
            value, low, high = data[name]["metrics"][metric]
            ax.axhline(value, linestyle=style, color="gray" if style == "--" else "black", label=name)
            ax.axhspan(low, high, alpha=0.08, color="gray")
        ax.set_xlabel("teacher-scored pairs in the pool (judged + mined)")
        ax.set_title(metric.replace("_", " "))
        ax.legend(fontsize=7)
    fig.suptitle(f"{data['dataset']} test split ({data['test_queries']} queries), {data['student']['epochs']:g} "
                 "epoch(s) at every size, 95% bootstrap intervals")
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))


if __name__ == "__main__":
    main()
