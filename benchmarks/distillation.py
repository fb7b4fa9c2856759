"""Distillation on Home Depot: random order vs teacher vs distilled student vs human-label student.

Reproduces the paper's comparison at a size a 2-core CPU finishes in about
30 minutes (defaults below; every size is a flag and is written into the JSON):

1. the LLM teacher (SmolLM2-135M) is fine-tuned with soft targets on the human
   labels of ``--teacher-queries`` training queries;
2. the teacher labels the judged pairs of ``--distill-queries`` training
   queries (a superset of its own; their human labels are not used), standing
   in for augmented data;
3. MiniLM-L6 students are distilled with within-query margin-MSE on growing
   subsets of those teacher-labeled queries (does quality rise with the data?);
4. the baseline student is trained pointwise on the same human labels the
   teacher saw;
5. all are scored on ``--test-queries`` test-split queries: NDCG@5/@10, MRR,
   pairwise accuracy.

Writes ``benchmarks/results/distillation.json`` and ``distillation.png``.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from reranker_core.config import StudentConfig, TeacherConfig  # noqa: E402
from reranker_core.files import write_json_atomic  # noqa: E402
from reranker_core.template import ProductTemplate  # noqa: E402
from training.datasets import group_by_query, load_homedepot  # noqa: E402
from training.evaluate import evaluate_offline, evaluate_scorer, judged_lists  # noqa: E402
from training.student import CrossEncoder, StudentExample, train_student  # noqa: E402
from training.teacher import Teacher, teacher_examples, train_teacher  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared/data/homedepot/train.csv.zip")
    parser.add_argument("--teacher-queries", type=int, default=200)
    parser.add_argument("--distill-queries", type=int, default=800)
    parser.add_argument("--distill-steps", default="200,400,800", help="Student sizes (queries) to evaluate.")
    parser.add_argument("--test-queries", type=int, default=250)
    parser.add_argument("--teacher-epochs", type=float, default=1.0)
    parser.add_argument("--teacher-top-layers", type=int, default=8, help="Decoder layers trained (CPU budget).")
    parser.add_argument("--student-epochs", type=float, default=2.0)
    parser.add_argument("--work", type=Path, default=ROOT / "benchmarks/results/distillation-work")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results")
    args = parser.parse_args()

    timings: dict[str, float] = {}
    clock = time.monotonic()

    def lap(name: str) -> None:
        nonlocal clock
        timings[name] = round(time.monotonic() - clock, 1)
        print(f"[{name}] {timings[name]:.0f}s", flush=True)
        clock = time.monotonic()

    template = ProductTemplate()
    dataset = load_homedepot(args.data)
    train = dataset.split("train")
    groups = group_by_query(train)
    rng = random.Random(0)
    all_train = sorted(groups)
    distill_queries = sorted(rng.sample(all_train, args.distill_queries))
    teacher_queries = set(rng.sample(distill_queries, args.teacher_queries))
    judged_of = lambda queries: [j for q in sorted(queries) for j in groups[q]]  # noqa: E731
    lap("load")

    # 1. teacher on the human labels of its queries
    tcfg = TeacherConfig(output=str(args.work / "teacher"), max_train_queries=None, epochs=args.teacher_epochs,
                         checkpoint_every=10_000, train_top_layers=args.teacher_top_layers)
    t_examples = teacher_examples(judged_of(teacher_queries), dataset.products, template, "binary",
                                  dataset.grade_levels, None, 0)
    t_report = train_teacher(tcfg, template, t_examples, dataset.grade_levels,
                             progress=lambda d, n: print(f"  teacher step {d}/{n}", flush=True) if d % 10 == 0
                             else None)
    lap("train teacher")
    teacher = Teacher.load(Path(tcfg.output))

    # 2. teacher labels the distillation pairs (their human labels stay unused)
    d_examples = teacher_examples(judged_of(distill_queries), dataset.products, template, "binary",
                                  dataset.grade_levels, None, 0)
    scores = teacher.score([(e.query, e.text) for e in d_examples], 32,
                           lambda d, n: print(f"  labeled {d}/{n}", flush=True) if d % 1024 < 32 else None)
    labeled = [StudentExample(e.query, e.text, s) for e, s in zip(d_examples, scores)]
    lap("teacher labels pairs")
    label_rate = len(labeled) / timings["teacher labels pairs"]

    # 3. + 4. students
    test = judged_lists(dataset, "test", template, (0.8, 0.1, 0.1), "reranker", args.test_queries)
    curve = {}
    distilled_name = None
    # the teacher's own queries first: the smallest student sees exactly the human student's pairs
    ordered = sorted(teacher_queries) + [q for q in distill_queries if q not in teacher_queries]
    for size in sorted(int(s) for s in args.distill_steps.split(",")):
        keep = set(ordered[:size])
        rows = [e for e in labeled if e.query in keep]
        name = f"student-distilled-{len({e.query for e in rows})}q"
        scfg = StudentConfig(output=str(args.work / name), epochs=args.student_epochs)
        train_student(scfg, template, rows, name=name)
        curve[name] = {**evaluate_scorer(CrossEncoder.load(Path(scfg.output)), test),
                       "train_queries": len({e.query for e in rows}), "train_pairs": len(rows)}
        distilled_name = name
        lap(f"train+eval {name}")
    human_rows = [StudentExample(e.query, e.text, e.target[0]) for e in t_examples]
    hcfg = StudentConfig(output=str(args.work / "student-human"), loss="pointwise", epochs=args.student_epochs)
    train_student(hcfg, template, human_rows, name="student-human")
    lap("train student-human")

    # 5. evaluation on the test split
    results = evaluate_offline([teacher, CrossEncoder.load(Path(hcfg.output))], test)
    results[distilled_name] = {k: v for k, v in curve[distilled_name].items() if not k.startswith("train_")}
    lap("evaluate")
    report = {
        "dataset": "homedepot", "split": "test", "test_queries": len(test),
        "sizes": {"teacher_train_queries": len(teacher_queries), "teacher_train_pairs": len(t_examples),
                  "teacher_steps": t_report.steps, "distill_queries": len(distill_queries),
                  "distill_pairs": len(labeled), "human_student_pairs": len(human_rows),
                  "teacher": f"SmolLM2-135M-Instruct (GGUF Q4_1, dequantized), top {args.teacher_top_layers} of 30 layers "
                             "trained, binary soft target",
                  "student": "MiniLM-L6 (all-MiniLM-L6-v2 weights), 1 logit"},
        "results": results, "distillation_curve": curve, "timings_s": timings,
        "total_s": round(sum(timings.values()), 1), "teacher_label_pairs_per_s": round(label_rate, 2),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(args.out / "distillation.json", report)
    plot(report, args.out / "distillation.png")
    print(json.dumps({k: {m: round(v, 4) for m, v in r.items()} for k, r in results.items()}, indent=1))
    print(f"total {report['total_s']:.0f}s; wrote {args.out / 'distillation.json'} and distillation.png")


def plot(report: dict, path: Path) -> None:
    """Left: NDCG@5 and pairwise accuracy per system. Right: distilled student vs teacher-labeled queries."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4), dpi=120, layout="constrained")
    FigureCanvasAgg(fig)
    left, right = fig.subplots(1, 2)
    systems = list(report["results"])
    for k, metric in enumerate(("ndcg@5", "pairwise_accuracy")):
        xs = [i + (k - 0.5) * 0.38 for i in range(len(systems))]
        bars = left.bar(xs, [report["results"][s][metric] for s in systems], 0.38, label=metric)
        left.bar_label(bars, fmt="%.3f", fontsize=7)
    left.set_xticks(range(len(systems)), systems, rotation=15, fontsize=8)
    left.set_ylim(0.4, 1.0)
    left.legend(fontsize=8)
    left.set_title(f"Home Depot test split ({report['test_queries']} queries)")
    curve = report["distillation_curve"]
    right.plot([c["train_queries"] for c in curve.values()], [c["ndcg@5"] for c in curve.values()], "o-",
               label="distilled student")
    for name, style in (("teacher", "--"), ("student-human", ":"), ("random", "-.")):
        if name in report["results"]:
            right.axhline(report["results"][name]["ndcg@5"], linestyle=style, color="gray", label=name)
    right.set_xlabel("teacher-labeled training queries")
    right.set_ylabel("NDCG@5")
    right.legend(fontsize=8)
    right.set_title("Student quality vs distillation data")
    fig.savefig(path)


if __name__ == "__main__":
    main()
