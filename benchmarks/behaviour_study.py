"""Does a teacher that reads user behaviour make a better student? (ProRBP; issue 25's study.)

For each click-noise level (``clicks.noise``: 0 = clicks follow the human grades as the click model states,
1 = clicks follow position only), in the main job's workspace (after `make run`):

1. simulate UBI sessions over the training split's queries into study-only indexes (`simulate-events`);
2. COEC implicit judgments from them (`implicit-judgments`; held-out queries dropped);
3. the behaviour teacher (`train-teacher --behaviour neighbours`), reusing the main job's plain cross-encoder
   (``--plain-from``: checked by fingerprint), so only its behaviour encoder trains (``--warm-start`` and
   ``--behaviour-epochs``: from the plain encoder, for a fraction of an epoch: a cheaper level);
4. the same pool relabeled by it: the judged training pairs (`label`) and the same logged queries' BM25 top-K
   (`augment`, the main job's query log and index); its plain cross-encoder's scores are read from the main job's
   pool (``--plain-pairs``, checked on a sample), so only the behaviour encoder runs;
5. a student with the main job's student recipe and exactly the baseline's optimizer steps;
6. both students on the test split (no behaviour there), offline: 95% intervals and the paired difference
   behaviour-teacher student − plain-teacher student, on NDCG@5 and pairwise accuracy.

Each level's files live under ``--work``/noise-<level>; each step is skipped when its output is there (the
teacher and students also resume from checkpoints), and the JSON keeps every level measured so far, so levels
can be run in separate sessions. Writes ``benchmarks/results/behaviour_study.json`` and ``.png``.

    .venv/bin/python benchmarks/behaviour_study.py --noise 0 [--noise 0.5 ...] [--sessions 40000]
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from reranker_core.config import Config, load_config, override  # noqa: E402
from reranker_core.files import atomic_write, write_json_atomic  # noqa: E402
from reranker_core.output import Output  # noqa: E402

METRICS = ("ndcg@5", "pairwise_accuracy")
OUT = ROOT / "benchmarks" / "results" / "behaviour_study.json"


class Say(Output):
    """Step lines on stdout (the study runs for hours: a log, not a display)."""

    def say(self, message: object) -> None:
        print(message, flush=True)

    def heading(self, title: str) -> None:
        print(f"== {title} ({time.strftime('%H:%M:%S')})", flush=True)


def level_name(noise: float) -> str:
    """noise-0, noise-0p5: a folder and index suffix."""
    return f"noise-{noise:g}".replace(".", "p")


def level_config(config: Config, noise: float, work: Path, args: argparse.Namespace) -> Config:
    """The main job's config with this level's click model, indexes and outputs; everything else unchanged."""
    base, tag = work / level_name(noise), level_name(noise)
    clicks = override(config.clicks, noise=noise, sessions=args.sessions, max_queries=args.max_queries,
                      seed=args.seed, events_index=f"ubi-events-{args.prefix}-{tag}",
                      queries_index=f"ubi-queries-{args.prefix}-{tag}",
                      output=str(base / "judgments.json"), sidecar=str(base / "simulation.json"))
    teacher = override(config.teacher, output=str(base / "teacher"), behaviour="neighbours",
                       implicit_judgments=clicks.output, plain_from=str(args.plain_teacher),
                       behaviour_warm_start=args.warm_start or config.teacher.behaviour_warm_start,
                       behaviour_epochs=args.behaviour_epochs or config.teacher.behaviour_epochs)
    return dataclasses.replace(config, clicks=clicks, teacher=teacher,
                               augment=override(config.augment, output=str(base / "pairs" / "augmented")),
                               student=override(config.student, output=str(base / "student"), loss="margin_mse"))


def run_level(config: Config, noise: float, work: Path, args: argparse.Namespace, client, out: Output) -> dict:
    """Steps 1-5 for one noise level (each skipped when done); returns the behaviour student's path and facts."""
    from reranker_plugin.jobs.api import augment_pool, implicit_judgments, label_pairs, simulate_clicks
    from reranker_plugin.jobs.main_job import queries_as_log
    from training.api import fit_student, fit_teacher
    from training.models import read_meta

    cfg = level_config(config, noise, work, args)
    base, c = work / level_name(noise), cfg.clicks
    timings: dict[str, float] = {}

    def step(name: str, done: bool, action) -> None:
        out.heading(f"{level_name(noise)}: {name}")
        if done:
            out.say("already done")
            return
        started = time.monotonic()
        action()
        timings[name] = round(time.monotonic() - started, 1)

    step("simulate events", Path(c.sidecar).is_file(), lambda: simulate_clicks(cfg, client, out=out))
    step("implicit judgments", Path(c.output).is_file(), lambda: implicit_judgments(cfg, client, out=out))
    teacher = Path(cfg.teacher.output)
    step("behaviour teacher", (teacher / "reranker.json").is_file(), lambda: fit_teacher(cfg, out=out))
    judged = base / "pairs" / "judged-train.parquet"
    reuse = (Path(args.plain_pairs),) if args.plain_pairs else ()  # the plain cross-encoder's scores of the same pool
    step("label judged pairs", judged.is_file(),
         lambda: label_pairs(cfg, teacher, output=judged, plain_scores=reuse, out=out))
    mined = Path(cfg.augment.output) / "report.json"
    step("augment", mined.is_file(), lambda: augment_pool(cfg, teacher, client, logs=(queries_as_log(cfg),),
                                                         replace_stale=True, plain_scores=reuse, out=out))
    steps = read_meta(args.baseline)["steps"]  # the baseline's budget, exactly
    student = dataclasses.replace(cfg, student=override(cfg.student, max_steps=steps))
    step("student", (Path(cfg.student.output) / "reranker.json").is_file(),
         lambda: fit_student(student, pairs=(base / "pairs",), out=out))
    trained = read_meta(teacher)  # as trained (a teacher from an earlier run is reused)
    recipe = trained.get("behaviour", {})
    return {"student": str(cfg.student.output), "teacher": str(teacher), "steps": steps, "seconds": timings,
            "behaviour_encoder": {k: recipe.get(k) for k in ("warm_start", "epochs")},
            "simulation": json.loads(Path(c.sidecar).read_text()),
            "teacher_views": trained.get("views", {})}


def compare(config: Config, baseline: Path, students: dict[str, Path]) -> dict:
    """Test split, offline: each student's metrics and its paired difference with the baseline (95% intervals)."""
    from training.bootstrap import intervals, paired_difference, per_query
    from training.datasets import load_data
    from training.evaluate import judged_lists, load_scorer, ranked_lists

    lists = judged_lists(load_data(config), "test", config.template, config.data.split_fractions,
                         config.data.split_salt)
    threshold = config.data.relevant_threshold
    plain = per_query(ranked_lists(load_scorer(baseline), lists), relevant_threshold=threshold)
    found = {"test_queries": len(lists), "baseline": intervals(plain), "levels": {}}
    for name, path in students.items():
        mine = per_query(ranked_lists(load_scorer(path), lists), relevant_threshold=threshold)
        found["levels"][name] = {"metrics": intervals(mine), "difference": paired_difference(mine, plain)}
    return found


def plot(result: dict, path: Path) -> None:
    """Paired difference (behaviour − plain student) against click noise, with intervals."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    levels = sorted(result["levels"].values(), key=lambda r: r["noise"])
    fig, axes = plt.subplots(1, len(METRICS), figsize=(10, 4))
    for ax, metric in zip(axes, METRICS):
        xs = [r["noise"] for r in levels]
        mid = [r["difference"][metric][0] for r in levels]
        err = [[m - r["difference"][metric][1] for m, r in zip(mid, levels)],
               [r["difference"][metric][2] - m for m, r in zip(mid, levels)]]
        ax.errorbar(xs, mid, yerr=err, fmt="o-", capsize=4)
        ax.axhline(0, color="grey", lw=0.8)
        ax.set(xlabel="click noise (0: clicks follow grades, 1: position only)",
               ylabel="behaviour − plain student", title=metric)
    fig.suptitle("Student from the behaviour teacher vs from the plain teacher (test split, 95% CI)")
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=120))
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=Path("reranker.yaml"))
    parser.add_argument("--data", type=Path, help="The main job's dataset (as `make run`'s DATA).")
    parser.add_argument("--kind", help="Its format (as `make run`'s KIND).")
    parser.add_argument("--noise", type=float, action="append", help="Click-noise level(s) in [0, 1] (repeatable).")
    parser.add_argument("--sessions", type=int, default=40_000, help="Simulated searches per level.")
    parser.add_argument("--max-queries", type=int, default=5_000, help="Most frequent training queries with clicks.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plain-teacher", type=Path, default=Path("runs/teacher"), help="The main job's teacher.")
    parser.add_argument("--baseline", type=Path, default=Path("runs/student"),
                        help="The plain teacher's student (its steps are the budget).")
    parser.add_argument("--plain-pairs", default="runs/pairs",
                        help="The main job's pool, labeled by the plain teacher: its cross-encoder's scores are "
                             "reused (checked on a sample), not recomputed. '' to recompute them.")
    parser.add_argument("--warm-start", action="store_true",
                        help="The behaviour encoder starts from the plain cross-encoder [teacher.behaviour_warm_start].")
    parser.add_argument("--behaviour-epochs", type=float,
                        help="The behaviour encoder's passes over the labels [teacher.behaviour_epochs].")
    parser.add_argument("--work", type=Path, default=Path("runs/behaviour-study"))
    parser.add_argument("--prefix", default="study", help="UBI indexes: ubi-events-<prefix>-noise-<level>, ...")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    levels = args.noise or [0.0]
    if not all(0 <= n <= 1 for n in levels):
        raise SystemExit("error: --noise takes levels in [0, 1]")
    from reranker_plugin.connection import connect

    config = load_config(args.config)
    if args.data:
        config = override(config, data=override(config.data, path=str(args.data), kind=args.kind or config.data.kind))
    client, out = connect(config.cluster), Say()
    done = {level_name(n): run_level(config, n, args.work, args, client, out) | {"noise": n} for n in levels}
    out.heading("test split")
    measured = compare(config, args.baseline, {name: Path(r["student"]) for name, r in done.items()})
    result = json.loads(args.out.read_text()) if args.out.is_file() else {"levels": {}}
    for name, facts in done.items():
        result["levels"][name] = facts | measured["levels"][name]
    result |= {"dataset": config.data.path, "test_queries": measured["test_queries"], "baseline": {
        "path": str(args.baseline), "metrics": measured["baseline"]}, "plain_teacher": str(args.plain_teacher)}
    write_json_atomic(args.out, result)
    plot(result, args.out.with_suffix(".png"))
    for name in done:
        diff = result["levels"][name]["difference"]
        out.say(f"{name}: behaviour − plain student NDCG@5 {diff['ndcg@5']}, pairwise {diff['pairwise_accuracy']}")
    out.say(f"wrote {args.out} and {args.out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
