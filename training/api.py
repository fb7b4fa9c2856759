"""The training steps as plain functions: train the teacher, train a student, export a zip.

Each takes the loaded :class:`Config` (its sections already carrying any command-line overrides) plus what the
step needs explicitly, reports through an :class:`Output` (quiet by default) and returns what it produced. The
`reranker` verbs and `reranker run` (``reranker_plugin.jobs.main_job``) both call these, so they print the
same lines and write the same files. Heavy libraries are imported inside the functions.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from reranker_core.config import Config, override
from reranker_core.output import QUIET, Output

from .datasets import load_data
from .models import TrainingReport

PAIRS_DIR = Path("runs/pairs")
STUDENT_CHECKPOINT_EVERY = 50  # optimizer steps between the student's resumable checkpoints (<output>.checkpoint)


def fit_teacher(config: Config, *, restart: bool = False, out: Output = QUIET) -> TrainingReport:
    """Train the teacher of ``config.teacher`` on the train split; continue from its checkpoint unless
    ``restart``. An ensemble teacher also fits its views' weights on the validation split."""
    from .teacher import teacher_examples

    cfg = config.teacher
    dataset = load_data(config)
    train = dataset.split("train", config.data.split_fractions, config.data.split_salt)
    if cfg.implicit_weight > 0:
        from .implicit import with_implicit_labels

        train, matched, simulated = with_implicit_labels(train, cfg.implicit_weight, cfg.implicit_judgments)
        out.say(f"{'SIMULATED ' if simulated else ''}implicit labels from {cfg.implicit_judgments} blended "
                f"with weight {cfg.implicit_weight} into {matched} of {len(train)} judged pairs")
    examples = teacher_examples(train, dataset.products, config.template, cfg.target, dataset.grade_levels,
                                cfg.max_train_queries, cfg.seed)
    out.say(f"{cfg.kind} teacher {cfg.model} on {len(examples)} judged pairs "
            f"({len({e.query for e in examples})} training queries of {dataset.name})")
    with out.progress("training teacher") as update:
        if cfg.kind == "ensemble":
            from .ensemble import train_ensemble_teacher
            from .evaluate import judged_lists
            from .student import StudentExample

            human = [StudentExample(e.query, e.text, e.target[0], e.label) for e in examples]
            validation = judged_lists(dataset, "validation", config.template, config.data.split_fractions,
                                      config.data.split_salt)
            context = behaviour_context(config, dataset, out) if cfg.behaviour else None
            report = train_ensemble_teacher(cfg, config.template, human, validation, Path(cfg.output), update,
                                            resume=not restart, behaviour=context)
        else:
            from .teacher import train_teacher

            report = train_teacher(cfg, config.template, examples, dataset.grade_levels, resume=not restart,
                                   progress=update)
    resumed = f", resumed at step {report.resumed_from}" if report.resumed_from else ""
    out.say(f"teacher saved to {report.path}: {report.steps} steps{resumed}, "
            f"loss {report.first_loss:.4f} -> {report.last_loss:.4f}")
    if cfg.kind == "ensemble":
        _say_views(report.path, out)
    return report


def _say_views(path: Path, out: Output) -> None:
    """Each view's fitted weight and what it was worth on the validation split."""
    from .models import read_meta

    meta = read_meta(path)
    for spec, fit in meta.get("fits", {}).items():
        if "validation_pairwise_accuracy" not in fit:
            out.say(f"view {spec}: weight {fit['weight']} ({fit['fit_on']})")
            continue
        curve = dict(map(tuple, fit["validation_pairwise_accuracy"]))
        out.say(f"view {spec}: weight {fit['weight']} (validation pairwise accuracy "
                f"{curve[0.0]:.4f} without it, {curve[fit['weight']]:.4f} with it)")
    for view, found in meta.get("views", {}).items():
        out.say(f"  {view}: NDCG@5 {found['ndcg@5']:.4f}, pairwise {found['pairwise_accuracy']:.4f}")


def behaviour_context(config: Config, dataset, out: Output = QUIET):
    """What the behaviour teacher reads, from the implicit judgment list (training queries only)."""
    from .behaviour import build_context
    from .implicit import read_implicit_labels

    cfg = config.teacher
    context = build_context(read_implicit_labels(Path(cfg.implicit_judgments)), dataset.products, config.template,
                            config.data.split_fractions, config.data.split_salt, cfg.behaviour_top_n,
                            cfg.behaviour_neighbours)
    out.say(f"behaviour from {cfg.implicit_judgments}: {len(context.engaged)} training queries with clicks, "
            f"{context.dropped_held_out} held-out queries dropped; neighbours by TF-IDF over query text")
    return context


def fit_student(config: Config, *, pairs: Sequence[Path] = (), max_train_queries: int | None = None,
                curve_points: int = 0, restart: bool = False, out: Output = QUIET) -> TrainingReport:
    """Train the student of ``config.student``: margin-MSE on teacher-scored ``pairs`` (default runs/pairs), or
    pointwise on the train split's human labels (at most ``max_train_queries`` queries, else
    teacher.max_train_queries). With ``curve_points``, validation is measured that many times while it trains.

    The training state is saved beside the output (``<output>.checkpoint``) every
    :data:`STUDENT_CHECKPOINT_EVERY` steps, so a killed run continues from there (unless ``restart``) and ends
    where an uninterrupted one does; the checkpoint is removed once the output is written."""
    import shutil

    from .models import ModelError, read_meta
    from .pairs import read_pairs
    from .student import StudentExample, train_student
    from .teacher import teacher_examples

    cfg = config.student
    if cfg.model == "teacher":  # warm start from the ensemble teacher's cross-encoder
        init = Path(config.teacher.output) / "cross_encoder"
        if not (init / "reranker.json").is_file():
            raise ModelError(f"student.model is 'teacher' but {init} holds no cross-encoder",
                             "train an ensemble teacher first (`reranker train-teacher`) or set student.model")
        cfg = override(cfg, model=str(init))
    if cfg.loss == "margin_mse":
        given = list(pairs) or [PAIRS_DIR]
        rows = read_pairs(given)
        examples = [StudentExample(r["query"], r["text"], float(r["teacher_score"]), r.get("label")) for r in rows]
        provenance = {"pairs": [str(p) for p in given], "sources": sorted({r.get("source") or "?" for r in rows}),
                      "teachers": sorted({r.get("teacher") or "?" for r in rows})}
    else:
        dataset = load_data(config)
        train = dataset.split("train", config.data.split_fractions, config.data.split_salt)
        budget = max_train_queries if max_train_queries is not None else config.teacher.max_train_queries
        human = teacher_examples(train, dataset.products, config.template, "binary", dataset.grade_levels,
                                 budget, config.teacher.seed)
        examples = [StudentExample(e.query, e.text, e.target[0]) for e in human]
        provenance = {"data": config.data.path, "sources": ["human"]}
    curve = None
    if curve_points:
        from .evaluate import judged_lists, validation_curve

        validation = judged_lists(load_data(config), "validation", config.template, config.data.split_fractions,
                                  config.data.split_salt)
        curve = validation_curve(validation, config.data.relevant_threshold)
    out.say(f"student ({cfg.loss}, {cfg.layers or 'all'} layers of {cfg.model}) on {len(examples)} pairs, "
            f"{len({e.query for e in examples})} queries")
    output = Path(cfg.output)
    checkpoint = output.with_name(f"{output.name}.checkpoint")
    if restart:
        shutil.rmtree(checkpoint, ignore_errors=True)
    with out.progress(f"training student ({cfg.loss})") as update:
        report = train_student(cfg, config.template, examples, progress=update, provenance=provenance, curve=curve,
                               curve_points=curve_points, checkpoint=checkpoint,
                               checkpoint_every=STUDENT_CHECKPOINT_EVERY, resume=not restart)
    shutil.rmtree(checkpoint, ignore_errors=True)  # the output is whole: the training state is spent
    resumed = f", resumed at step {report.resumed_from}" if report.resumed_from else ""
    out.say(f"student saved to {report.path}: {report.steps} steps{resumed}, "
            f"loss {report.first_loss:.4f} -> {report.last_loss:.4f}")
    for point in read_meta(report.path).get("curve", []):
        out.say(f"  validation at {point['epochs']:.2f} epochs ({point['pairs_seen']} pairs seen): "
                f"NDCG@5 {point['ndcg@5']:.4f}, pairwise {point['pairwise_accuracy']:.4f}")
    return report


@dataclass(frozen=True)
class Exported:
    """What :func:`export_model` wrote: the fp32 zip and its parity, and with int8 the quantized zip and verdict."""

    zip: Path
    max_abs_diff: float
    int8_zip: Path | None = None
    verdict: dict | None = None
    verdict_path: Path | None = None


def export_model(config: Config, folder: Path, output: Path | None = None, *, pretrained: bool = False,
                 max_length: int | None = None, int8: bool = False, verdict_path: Path | None = None,
                 max_queries: int | None = None, out: Output = QUIET) -> Exported:
    """Write the ONNX zip ML Commons deploys from a train-student checkpoint (or, with ``pretrained``, any
    single-logit sequence-classification folder), after checking torch vs onnxruntime parity.

    With ``int8`` also the quantized zip (``<output>-int8.zip``), compared with fp32 on the validation split
    (at most ``max_queries`` queries); the verdict goes to ``verdict_path`` (default ``<int8 zip>.json``).
    ``max_length`` applies to ``pretrained`` folders only: a student keeps its template's max_tokens.
    """
    from .export import export_folder, export_student, quantize_int8

    output = output or zip_beside(folder)
    with out.progress("exporting", "stages") as update:
        if pretrained:
            report = export_folder(folder, output, max_length, config.template.max_tokens, update)
        else:
            report = export_student(folder, output, update)
    pairs = "built-in probe pairs" if report.probes else "real pairs"
    out.say(f"{report.path}: {report.path.stat().st_size / 1e6:.1f} MB, max |torch - onnxruntime| = "
            f"{report.max_abs_diff:.2e} over {report.pairs_checked} {pairs}")
    if not int8:
        return Exported(report.path, report.max_abs_diff)
    from reranker_core.files import write_json_atomic

    from .evaluate import int8_verdict, judged_lists

    dataset = load_data(config)
    quantized = quantize_int8(output, output.with_name(f"{output.stem}-int8.zip"))
    lists = judged_lists(dataset, "validation", config.template, config.data.split_fractions,
                         config.data.split_salt, max_queries)
    with out.progress("comparing int8 with fp32", "pairs") as update:
        verdict = int8_verdict(output, quantized, lists, config.data.relevant_threshold, update)
    verdict_path = verdict_path or quantized.with_suffix(".json")
    write_json_atomic(verdict_path, verdict)
    value, low, high = verdict["int8 - fp32"]["ndcg@5"]
    out.say(f"{quantized}: {quantized.stat().st_size / 1e6:.1f} MB; int8 - fp32 NDCG@5 on {len(lists)} "
            f"validation queries {value:+.4f} [{low:+.4f}, {high:+.4f}]: "
            + ("within noise" if verdict["within_noise"] else "worse beyond noise")
            + f"; verdict in {verdict_path}")
    return Exported(report.path, report.max_abs_diff, quantized, verdict, verdict_path)


def zip_beside(folder: Path) -> Path:
    """``<folder>.zip`` next to the folder (``bge-reranker-v2.5`` -> ``bge-reranker-v2.5.zip``, not ``-v2.zip``)."""
    resolved = folder.resolve()
    return resolved.with_name(f"{resolved.name}.zip")
