"""Training commands: train-teacher, label, train-student, export, evaluate-offline.

Each reads its section of ``reranker.yaml`` (flags override it), shows a
progress bar, and writes its output atomically, so an interrupted run leaves
the previous output intact.
"""
from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import click

from reranker_core.config import override

from .app import (Context, Deprecated, GrammarCommand, cli, console, data_option, engine_options, err_console,
                  kind_option, load_data, pass_ctx, progress_bar, renamed, report_comparison, restart_option,
                  with_data, with_engine)

PAIRS_DIR = Path("runs/pairs")


# ------------------------------------------------------------- teacher
@cli.command("train-teacher", cls=GrammarCommand, old_spellings={
    "--resume": Deprecated((), "resuming is the default (use --restart to start over)"),
    "--max-train-queries": renamed("--max-queries")})
@data_option
@kind_option
@click.option("--output", type=click.Path(path_type=Path), help="Checkpoint directory [teacher.output].")
@click.option("--teacher-kind", "kind_", type=click.Choice(["ensemble", "llm"]),
              help="ensemble: cross-encoder + bi-encoder views; llm: decoder LM classifier [teacher.kind].")
@click.option("--model", help="Base model: the cross-encoder (ensemble) or decoder LM (llm) [teacher.model].")
@click.option("--gguf-file", help="llm: GGUF file inside --model [teacher.gguf_file].")
@click.option("--target", type=click.Choice(["binary", "distribution"]), help="llm: soft target kind [teacher.target].")
@click.option("--lora/--no-lora", default=None, help="llm: train LoRA adapters instead of all weights [teacher.lora].")
@click.option("--max-queries", "max_train_queries", type=int,
              help="Use at most N of the train split's queries (seeded sample): the training budget "
              "[teacher.max_train_queries].")
@click.option("--max-steps", type=int, help="Stop after this many optimizer steps [teacher.max_steps].")
@click.option("--epochs", type=float, help="Passes over the training queries [teacher.epochs].")
@click.option("--behaviour", type=click.Choice(["neighbours"]),
              help="ensemble: also train a cross-encoder reading the titles users clicked for the query and its "
              "nearest training queries, aggregated as a view [teacher.behaviour].")
@click.option("--implicit-judgments", type=click.Path(),
              help="The judgment list `reranker implicit-judgments` wrote [teacher.implicit_judgments].")
@restart_option
@pass_ctx
def train_teacher(ctx: Context, data: Path | None, kind: str | None, kind_: str | None, restart: bool,
                  **flags) -> None:
    """Train the teacher on the train split's soft labels (every judged pair unless a budget is set).

    An ensemble teacher also fits its views' weights on the validation split.
    With --behaviour neighbours it adds a behaviour cross-encoder and the
    implicit judgments as views (docs/clicks.md); validation and test queries
    never read behaviour. Training continues from the checkpoint beside
    --output (<output>.checkpoint) when there is one; --restart ignores it.

    Example:

    \b
      reranker train-teacher --data data/train.csv.zip --kind homedepot --epochs 1
      reranker train-teacher --behaviour neighbours --implicit-judgments runs/clicks/judgments.json
    """
    ctx.quiet_models()
    from training.teacher import teacher_examples

    resume = not restart

    flags["output"] = str(flags["output"]) if flags["output"] else None
    config = with_data(ctx.config, data, kind)
    cfg = override(config.teacher, **flags)
    if kind_ and kind_ != cfg.kind:  # another kind: its own defaults for what the flags leave open
        cfg = dataclasses.replace(cfg, kind=kind_, model=flags["model"], gguf_file=flags["gguf_file"],
                                  learning_rate=None)
    dataset = load_data(config)
    train = dataset.split("train", config.data.split_fractions, config.data.split_salt)
    if cfg.implicit_weight > 0:
        from training.implicit import with_implicit_labels

        train, matched, simulated = with_implicit_labels(train, cfg.implicit_weight, cfg.implicit_judgments)
        console.print(f"{'SIMULATED ' if simulated else ''}implicit labels from {cfg.implicit_judgments} blended "
                      f"with weight {cfg.implicit_weight} into {matched} of {len(train)} judged pairs")
    examples = teacher_examples(train, dataset.products, config.template, cfg.target, dataset.grade_levels,
                                cfg.max_train_queries, cfg.seed)
    console.print(f"{cfg.kind} teacher {cfg.model} on {len(examples)} judged pairs "
                  f"({len({e.query for e in examples})} training queries of {dataset.name})")
    with progress_bar("training teacher") as update:
        if cfg.kind == "ensemble":
            from training.ensemble import train_ensemble_teacher
            from training.evaluate import judged_lists
            from training.student import StudentExample

            human = [StudentExample(e.query, e.text, e.target[0], e.label) for e in examples]
            validation = judged_lists(dataset, "validation", config.template, config.data.split_fractions,
                                      config.data.split_salt)
            context = behaviour_context(cfg, config, dataset) if cfg.behaviour else None
            report = train_ensemble_teacher(cfg, config.template, human, validation, Path(cfg.output), update,
                                            resume=resume, behaviour=context)
        else:
            from training.teacher import train_teacher as run

            report = run(cfg, config.template, examples, dataset.grade_levels, resume=resume, progress=update)
    resumed = f", resumed at step {report.resumed_from}" if report.resumed_from else ""
    console.print(f"teacher saved to {report.path}: {report.steps} steps{resumed}, "
                  f"loss {report.first_loss:.4f} -> {report.last_loss:.4f}")
    if cfg.kind == "ensemble":
        from training.models import read_meta

        for spec, fit in read_meta(report.path).get("fits", {}).items():
            if "validation_pairwise_accuracy" not in fit:
                console.print(f"view {spec}: weight {fit['weight']} ({fit['fit_on']})")
                continue
            curve = dict(map(tuple, fit["validation_pairwise_accuracy"]))
            console.print(f"view {spec}: weight {fit['weight']} (validation pairwise accuracy "
                          f"{curve[0.0]:.4f} without it, {curve[fit['weight']]:.4f} with it)")
        for view, found in read_meta(report.path).get("views", {}).items():
            console.print(f"  {view}: NDCG@5 {found['ndcg@5']:.4f}, pairwise "
                          f"{found['pairwise_accuracy']:.4f}")


def behaviour_context(cfg, config, dataset):
    """What the behaviour teacher reads, from the implicit judgment list (training queries only)."""
    from training.behaviour import build_context
    from training.implicit import read_implicit_labels

    context = build_context(read_implicit_labels(Path(cfg.implicit_judgments)), dataset.products, config.template,
                            config.data.split_fractions, config.data.split_salt, cfg.behaviour_top_n,
                            cfg.behaviour_neighbours)
    console.print(f"behaviour from {cfg.implicit_judgments}: {len(context.engaged)} training queries with clicks, "
                  f"{context.dropped_held_out} held-out queries dropped; neighbours by TF-IDF over query text")
    return context


@cli.command("label", cls=GrammarCommand, old_spellings={"--out": renamed("--output")})
@click.argument("teacher_dir", type=click.Path(path_type=Path))
@data_option
@kind_option
@click.option("--split", default="train", show_default=True, type=click.Choice(["train", "validation", "test"]))
@click.option("--max-queries", type=int, help="Use at most N of the split's queries (seeded sample) [all].")
@click.option("--output", "out", type=click.Path(path_type=Path),
              help="Pairs file [runs/pairs/judged-<split>.parquet].")
@engine_options
@pass_ctx
def label(ctx: Context, teacher_dir: Path, data: Path | None, kind: str | None, split: str,
          max_queries: int | None, out: Path | None, engine: str | None, ray_address: str | None) -> None:
    """Score a split's judged pairs with the teacher once, for the student to distil.

    Example:

    \b
      reranker label runs/teacher --split train
    """
    ctx.quiet_models()
    from reranker_core.template import ProductTemplate
    from training.ensemble import load_teacher, teacher_name
    from training.models import read_meta
    from training.pairs import write_pairs
    from training.teacher import teacher_examples

    config = with_engine(with_data(ctx.config, data, kind), engine, ray_address)
    dataset = load_data(config)
    on_ray = config.engine.kind == "ray"
    teacher = None if on_ray else load_teacher(teacher_dir)
    template = teacher.template if teacher else ProductTemplate(**read_meta(teacher_dir)["template"])
    judged = dataset.split(split, config.data.split_fractions, config.data.split_salt)
    examples = teacher_examples(judged, dataset.products, template, "binary", dataset.grade_levels,
                                max_queries, config.teacher.seed)
    pairs = [(e.query, e.text) for e in examples]
    with progress_bar("labeling judged pairs", "pairs") as update:
        if teacher is None:
            from ..jobs.ray_engine import score_on_ray

            from training.ensemble import teacher_fingerprint

            target = out or PAIRS_DIR / f"judged-{split}.parquet"
            parts = target.with_name(target.name + ".parts")  # kept chunks: a rerun resumes
            scored = score_on_ray(config.engine, teacher_dir, pairs, config.teacher.score_batch_size, update,
                                  parts, teacher_fingerprint(teacher_dir), resumed=_say_resumed)
        else:
            scored = teacher.score_with_distribution(pairs, config.teacher.score_batch_size, update)
    name = teacher.name if teacher else teacher_name(teacher_dir)
    rows = [{"query": e.query, "product_id": e.product_id, "text": e.text, "teacher_score": score,
             "teacher_probs": probs, "teacher": name, "source": "judged", "label": e.label}
            for e, (score, probs) in zip(examples, scored)]
    out = write_pairs(out or PAIRS_DIR / f"judged-{split}.parquet", rows)
    if on_ray:
        shutil.rmtree(parts, ignore_errors=True)  # the pairs file is whole: the kept chunks are spent
    console.print(f"{len(rows)} teacher-scored pairs ({len({r['query'] for r in rows})} queries) -> {out}")


def _say_resumed(done: int, total: int) -> None:
    """Tell a rerun of ``label --engine ray`` how much an interrupted run left."""
    if done:
        err_console.print(f"resumed: {done} of {total} chunks were already scored", highlight=False)


# ------------------------------------------------------------- student
@cli.command("train-student", cls=GrammarCommand,
             old_spellings={"--max-train-queries": renamed("--max-queries")})
@click.option("--pairs", "pairs", multiple=True, type=click.Path(path_type=Path),
              help="Teacher-scored pairs (file or directory; repeatable) for margin_mse [runs/pairs].")
@data_option
@kind_option
@click.option("--loss", type=click.Choice(["margin_mse", "pointwise"]), help="Objective [student.loss].")
@click.option("--max-queries", "max_train_queries", type=int,
              help="pointwise: use at most N of the train split's queries (seeded sample) "
              "[teacher.max_train_queries].")
@click.option("--output", type=click.Path(path_type=Path), help="Checkpoint directory [student.output].")
@click.option("--model", help="Encoder to start from; 'teacher': the ensemble teacher's cross-encoder "
              "[student.model].")
@click.option("--layers", type=click.IntRange(min=1),
              help="Keep this many of the encoder's layers, evenly spaced: a smaller, faster student "
              "[student.layers; default all].")
@click.option("--max-steps", type=int, help="Stop after this many steps [student.max_steps].")
@click.option("--epochs", type=float, help="Passes over the pairs [student.epochs].")
@click.option("--max-pairs", type=int, help="Budget in pairs seen; overrides --epochs [student.max_pairs].")
@click.option("--human-weight", type=float,
              help="margin_mse: weight of the BCE term on pairs with a human label [student.human_weight].")
@click.option("--robust-share", type=click.FloatRange(0, 1),
              help="margin_mse: also train this share of each batch's queries perturbed (typos, unit spellings, "
              "dropped or moved words) on the clean query's margins [student.robust_share].")
@click.option("--contrastive-weight", type=click.FloatRange(min=0),
              help="With --robust-share: weight of the InfoNCE term pulling a perturbed pair to its clean pair "
              "[student.contrastive_weight].")
@click.option("--normalize-terms/--raw-terms", default=None,
              help="Write numbers and units one way (3/4 in. = 0.75 inch) in the tokenizer, which the zip keeps "
              "[student.normalize_terms].")
@click.option("--curve-points", type=click.IntRange(min=0), default=0, show_default=True,
              help="Measure validation NDCG@5 and pairwise accuracy at this many evenly spaced steps (kept in "
              "<output>/reranker.json as the curve; needs --data).")
@pass_ctx
def train_student(ctx: Context, pairs: tuple[Path, ...], data: Path | None, kind: str | None,
                  max_train_queries: int | None, curve_points: int, **flags) -> None:
    """Train the cross-encoder: margin-MSE on teacher-scored pairs, or pointwise on human labels (baseline).

    Example:

    \b
      reranker train-student --pairs runs/pairs --layers 3 --output runs/student
    """
    ctx.quiet_models()
    from training.pairs import read_pairs
    from training.student import StudentExample
    from training.student import train_student as run
    from training.teacher import teacher_examples

    flags["output"] = str(flags["output"]) if flags["output"] else None
    config = with_data(ctx.config, data, kind)
    cfg = override(config.student, **flags)
    if cfg.model == "teacher":  # warm start from the ensemble teacher's cross-encoder
        from training.models import ModelError

        init = Path(config.teacher.output) / "cross_encoder"
        if not (init / "reranker.json").is_file():
            raise ModelError(f"student.model is 'teacher' but {init} holds no cross-encoder",
                             "train an ensemble teacher first (`reranker train-teacher`) or set student.model")
        cfg = override(cfg, model=str(init))
    if cfg.loss == "margin_mse":
        rows = read_pairs(pairs or [PAIRS_DIR])
        examples = [StudentExample(r["query"], r["text"], float(r["teacher_score"]), r.get("label")) for r in rows]
        sources = sorted({r.get("source") or "?" for r in rows})
        provenance = {"pairs": [str(p) for p in (pairs or [PAIRS_DIR])], "sources": sources,
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
        from training.evaluate import judged_lists, validation_curve

        validation = judged_lists(load_data(config), "validation", config.template, config.data.split_fractions,
                                  config.data.split_salt)
        curve = validation_curve(validation, config.data.relevant_threshold)
    console.print(f"student ({cfg.loss}, {cfg.layers or 'all'} layers of {cfg.model}) on {len(examples)} pairs, "
                  f"{len({e.query for e in examples})} queries")
    with progress_bar(f"training student ({cfg.loss})") as update:
        report = run(cfg, config.template, examples, progress=update, provenance=provenance, curve=curve,
                     curve_points=curve_points)
    console.print(f"student saved to {report.path}: {report.steps} steps, "
                  f"loss {report.first_loss:.4f} -> {report.last_loss:.4f}")
    from training.models import read_meta

    for point in read_meta(report.path).get("curve", []):
        console.print(f"  validation at {point['epochs']:.2f} epochs ({point['pairs_seen']} pairs seen): "
                      f"NDCG@5 {point['ndcg@5']:.4f}, pairwise {point['pairwise_accuracy']:.4f}")


# -------------------------------------------------------------- export
@cli.command("export", cls=GrammarCommand, old_spellings={"--out": renamed("--output")})
@click.argument("student_dir", required=False, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--from", "source", type=click.Path(path_type=Path),
              help="Instead of STUDENT_DIR: any transformers sequence-classification folder with one output "
              "logit (a cross-encoder you already have, saved with save_pretrained).")
@click.option("--output", "out", type=click.Path(path_type=Path),
              help="Zip to write [<student_dir>.zip or <from>.zip].")
@click.option("--max-length", type=click.IntRange(min=8),
              help="With --from: truncation length written into tokenizer.json [template.max_tokens, at most "
              "what the model reads].")
@click.option("--int8", is_flag=True, help="Also write an int8 dynamically quantized zip (<output>-int8.zip), "
              "compare it with fp32 on the validation split (paired NDCG@5) and record the verdict in --json.")
@click.option("--json", "verdict_path", type=click.Path(path_type=Path),
              help="With --int8: where to write the verdict [<output>-int8.json].")
@data_option
@kind_option
@click.option("--max-queries", type=int,
              help="With --int8: use at most N of the validation split's queries (sorted) [all].")
@pass_ctx
def export(ctx: Context, student_dir: Path | None, source: Path | None, out: Path | None, max_length: int | None,
           int8: bool, verdict_path: Path | None, data: Path | None, kind: str | None, max_queries: int | None) -> None:
    """Write the ONNX zip ML Commons deploys, after checking torch vs onnxruntime parity.

    Exports a train-student checkpoint (STUDENT_DIR), or with --from any
    single-logit cross-encoder folder; `reranker deploy` takes either zip.

    Example:

    \b
      reranker export runs/student --output runs/student.zip
      reranker export --from ./my-cross-encoder --output model.zip
    """
    if student_dir is None and source is None:
        raise click.UsageError("pass STUDENT_DIR (a train-student checkpoint) or --from FOLDER (any single-logit "
                               "cross-encoder)")
    if student_dir is not None and source is not None:
        raise click.UsageError("pass STUDENT_DIR or --from FOLDER, not both")
    if verdict_path is not None and not int8:
        raise click.UsageError("--json is where --int8 writes its verdict: add --int8, or drop --json")
    ctx.quiet_models()
    from training.export import export_folder, export_student, quantize_int8

    folder = source or student_dir
    out = out or _zip_beside(folder)
    if source is None and max_length is not None:
        raise click.UsageError("--max-length applies to --from; a student keeps its template's max_tokens")
    with progress_bar("exporting", "stages") as update:
        if source is None:
            report = export_student(folder, out, update)
        else:
            report = export_folder(folder, out, max_length, ctx.config.template.max_tokens, update)
    pairs = "built-in probe pairs" if report.probes else "real pairs"
    console.print(f"{report.path}: {report.path.stat().st_size / 1e6:.1f} MB, max |torch - onnxruntime| = "
                  f"{report.max_abs_diff:.2e} over {report.pairs_checked} {pairs}")
    if not int8:
        return
    from reranker_core.files import write_json_atomic
    from training.evaluate import int8_verdict, judged_lists

    config = with_data(ctx.config, data, kind)
    dataset = load_data(config)
    quantized = quantize_int8(out, out.with_name(f"{out.stem}-int8.zip"))
    lists = judged_lists(dataset, "validation", config.template, config.data.split_fractions,
                         config.data.split_salt, max_queries)
    with progress_bar("comparing int8 with fp32", "pairs") as update:
        verdict = int8_verdict(out, quantized, lists, config.data.relevant_threshold, update)
    verdict_path = verdict_path or quantized.with_suffix(".json")
    write_json_atomic(verdict_path, verdict)
    value, low, high = verdict["int8 - fp32"]["ndcg@5"]
    console.print(f"{quantized}: {quantized.stat().st_size / 1e6:.1f} MB; int8 - fp32 NDCG@5 on {len(lists)} "
                  f"validation queries {value:+.4f} [{low:+.4f}, {high:+.4f}]: "
                  + ("within noise" if verdict["within_noise"] else "worse beyond noise")
                  + f"; verdict in {verdict_path}")


def _zip_beside(folder: Path) -> Path:
    """``<folder>.zip`` next to the folder (``bge-reranker-v2.5`` -> ``bge-reranker-v2.5.zip``, not ``-v2.zip``)."""
    resolved = folder.resolve()
    return resolved.with_name(f"{resolved.name}.zip")


# ------------------------------------------------------------ evaluate
@cli.command("evaluate-offline")
@click.argument("models", nargs=-1, required=True, type=click.Path(path_type=Path))
@data_option
@kind_option
@click.option("--split", default="test", show_default=True, type=click.Choice(["train", "validation", "test"]))
@click.option("--max-queries", type=int, help="Use at most N of the split's queries (sorted) [all].")
@click.option("--json", "json_path", type=click.Path(path_type=Path), default=Path("runs/evaluate-offline.json"),
              show_default=True, help="Where to write the metrics.")
@pass_ctx
def evaluate_offline(ctx: Context, models: tuple[Path, ...], data: Path | None, kind: str | None, split: str,
                     max_queries: int | None, json_path: Path) -> None:
    """NDCG@5/@10, MRR and pairwise accuracy of teacher / student checkpoints or zips, plus random order.

    Example:

    \b
      reranker evaluate-offline runs/teacher runs/student.zip --max-queries 200
    """
    ctx.quiet_models()
    from training.bootstrap import random_per_query
    from training.evaluate import judged_lists, load_scorer, ranked_lists

    config = with_data(ctx.config, data, kind)
    dataset = load_data(config)
    lists = judged_lists(dataset, split, config.template, config.data.split_fractions, config.data.split_salt,
                         max_queries)
    systems = {"random": random_per_query([j.labels for j in lists])}
    for model in models:
        scorer = load_scorer(model)
        with progress_bar(f"scoring with {scorer.name}", "pairs") as update:
            systems[scorer.name] = ranked_lists(scorer, lists, update)
    names = [n for n in systems if n != "random"]
    pairs = [(n, "random") for n in names] + [(names[0], n) for n in names[1:]]
    report_comparison(systems, pairs, f"{dataset.name} {split} split, offline, {len(lists)} judged lists",
                      json_path, config.data.relevant_threshold)

