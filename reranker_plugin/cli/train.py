"""Training commands: train-teacher, label, train-student, export, evaluate-offline.

Each reads its section of ``reranker.yaml`` (flags override it), shows a
progress bar, and writes its output atomically, so an interrupted run leaves
the previous output intact.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import click

from reranker_core.config import PERTURBATION_FAMILIES, override

from .app import (Context, Deprecated, GrammarCommand, cli, data_option, engine_options, kind_option, pass_ctx,
                  renamed, restart_option, with_data, with_engine)


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
@click.option("--plain-from", type=click.Path(),
              help="ensemble: reuse this teacher's cross-encoder when it was trained with the same settings on the "
              "same labels (checked by fingerprint) instead of training it again [teacher.plain_from].")
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
      reranker train-teacher --behaviour neighbours --plain-from runs/teacher --output runs/teacher-behaviour
    """
    ctx.quiet_models()
    from training.api import fit_teacher

    flags["output"] = str(flags["output"]) if flags["output"] else None
    config = with_data(ctx.config, data, kind)
    cfg = override(config.teacher, **flags)
    if kind_ and kind_ != cfg.kind:  # another kind: its own defaults for what the flags leave open
        cfg = dataclasses.replace(cfg, kind=kind_, model=flags["model"], gguf_file=flags["gguf_file"],
                                  learning_rate=None)
    fit_teacher(dataclasses.replace(config, teacher=cfg), restart=restart, out=ctx.output)


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
    from ..jobs.api import label_pairs

    config = with_engine(with_data(ctx.config, data, kind), engine, ray_address)
    label_pairs(config, teacher_dir, split=split, max_queries=max_queries, output=out, out=ctx.output)


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
@click.option("--robust-family", "robust_families", multiple=True,
              type=click.Choice(PERTURBATION_FAMILIES),
              help="With --robust-share: train on this perturbation family only (repeatable) "
              "[student.robust_families; default all four].")
@click.option("--contrastive-weight", type=click.FloatRange(min=0),
              help="With --robust-share: weight of the InfoNCE term pulling a perturbed pair to its clean pair "
              "[student.contrastive_weight].")
@click.option("--contrastive-anchored/--contrastive-both-ways", default=None,
              help="The InfoNCE term moves only the perturbed pairs' vectors toward the clean ones (no gradient "
              "through the clean side) [student.contrastive_anchored].")
@click.option("--adversarial-epsilon", type=click.FloatRange(min=0),
              help="FGM: also take each batch's loss with the word embeddings moved this far along its gradient "
              "(about twice a step's cost; 0: off) [student.adversarial_epsilon].")
@click.option("--normalize-terms/--raw-terms", default=None,
              help="Write numbers and units one way (3/4 in. = 0.75 inch) in the tokenizer, which the zip keeps "
              "[student.normalize_terms].")
@click.option("--curve-points", type=click.IntRange(min=0), default=0, show_default=True,
              help="Measure validation NDCG@5 and pairwise accuracy at this many evenly spaced steps (kept in "
              "<output>/reranker.json as the curve; needs --data).")
@restart_option
@pass_ctx
def train_student(ctx: Context, pairs: tuple[Path, ...], data: Path | None, kind: str | None,
                  max_train_queries: int | None, curve_points: int, restart: bool, **flags) -> None:
    """Train the cross-encoder: margin-MSE on teacher-scored pairs, or pointwise on human labels (baseline).

    Training continues from the checkpoint beside --output
    (<output>.checkpoint, saved every 50 steps) when there is one; --restart
    ignores it.

    Example:

    \b
      reranker train-student --pairs runs/pairs --layers 3 --output runs/student
    """
    ctx.quiet_models()
    from training.api import fit_student

    flags["output"] = str(flags["output"]) if flags["output"] else None
    flags["robust_families"] = flags["robust_families"] or None
    config = with_data(ctx.config, data, kind)
    fit_student(dataclasses.replace(config, student=override(config.student, **flags)), pairs=pairs,
                max_train_queries=max_train_queries, curve_points=curve_points, restart=restart, out=ctx.output)


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
    if source is None and max_length is not None:
        raise click.UsageError("--max-length applies to --from; a student keeps its template's max_tokens")
    ctx.quiet_models()
    from training.api import export_model

    export_model(with_data(ctx.config, data, kind), source or student_dir, out, pretrained=source is not None,
                 max_length=max_length, int8=int8, verdict_path=verdict_path, max_queries=max_queries,
                 out=ctx.output)


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
    from ..jobs.api import evaluate_offline as run

    run(with_data(ctx.config, data, kind), models, split=split, max_queries=max_queries, json_path=json_path,
        out=ctx.output)
