"""`reranker run`: the main job, chaining the other commands in one process."""
from __future__ import annotations

import time
from pathlib import Path

import click

from .app import Context, cli, command, console, data_option, kind_option, load_data, pass_ctx, with_data


@cli.command("run")
@data_option
@kind_option
@click.option("--log", "logs", multiple=True, type=click.Path(path_type=Path),
              help="Query log(s) for augmentation; default: the dataset's training queries as the log.")
@click.option("--restart", is_flag=True, help="Retrain and re-mine instead of reusing finished steps.")
@pass_ctx
def run_all(ctx: Context, data: Path | None, kind: str | None, logs: tuple[Path, ...], restart: bool) -> None:
    """The main job: node up, index, teacher, augment, label, student, export, deploy, evaluate.

    Budgets come from reranker.yaml (teacher.max_train_queries, augment.max_queries,
    evaluate.max_queries...). Finished steps are reused on a re-run unless --restart.
    """
    cluster_up, deploy = command("cluster", "up"), command("deploy")
    index_catalog, augment, evaluate = command("index-catalog"), command("augment"), command("evaluate")
    train_teacher, label, train_student = command("train-teacher"), command("label"), command("train-student")
    export = command("export")

    config = with_data(ctx.config, data, kind)
    ctx.config = config
    click_ctx = click.get_current_context()
    timings: dict[str, float] = {}

    def step(name: str, done: bool, fn, **kwargs) -> None:
        console.rule(f"[bold]{name}")
        started = time.monotonic()
        if done and not restart:
            console.print("already done; reusing (pass --restart to redo)")
        else:
            click_ctx.invoke(fn, **kwargs)
        timings[name] = time.monotonic() - started

    teacher_dir, student_dir = Path(config.teacher.output), Path(config.student.output)
    zip_path = student_dir.with_suffix(".zip")
    log_paths = list(logs) or [_queries_as_log(config)]
    if _is_local(config.cluster.url):
        step("cluster up", False, cluster_up, port=None)
    step("index catalog", False, index_catalog, catalog=None, data=None, kind=None, index=None)
    step("train teacher", (teacher_dir / "reranker.json").is_file(), train_teacher, data=None, kind=None,
         resume=True, output=None, model=None, gguf_file=None, target=None, lora=None, max_train_queries=None,
         max_steps=None, epochs=None)
    step("label judged pairs", Path("runs/pairs/judged-train.parquet").is_file(), label, teacher_dir=teacher_dir,
         data=None, kind=None, split="train", max_queries=config.teacher.max_train_queries, out=None)
    step("augment", False, augment, teacher_dir=teacher_dir, logs=tuple(log_paths), data=None, kind=None,
         index=None, restart=restart, ubi_index=None, top_k=None, max_queries=None, output=None,
         max_malformed_fraction=None)
    step("train student", (student_dir / "reranker.json").is_file(), train_student, pairs=(), data=None,
         kind=None, max_train_queries=None, loss="margin_mse", output=None, model=None, max_steps=None, epochs=None)
    step("export", False, export, student_dir=student_dir, out=zip_path, int8=False,
         data=None, kind=None, max_queries=300)
    step("deploy", False, deploy, model_zip=zip_path, model_name=None, model_version=None, model_group=None,
         index=None, document_fields=(), pipeline=None, default_pipeline=None, deploy_timeout_s=None)
    step("evaluate", False, evaluate, data=None, kind=None, pipelines=(), index=None, split=None, max_queries=None,
         json_path=None)
    console.rule("[bold]done")
    for name, seconds in timings.items():
        console.print(f"{name:>20}: {seconds:7.1f}s")
    console.print(f"{'total':>20}: {sum(timings.values()):7.1f}s")


def _queries_as_log(config) -> Path:
    """Without a real log, the dataset's search terms stand in for one (evaluation queries are excluded later)."""
    import json

    from reranker_core.files import atomic_write

    lines = "".join(json.dumps({"user_query": j.query}) + "\n" for j in load_data(config).judgments)
    return atomic_write(Path("runs/query-log.jsonl"), lambda tmp: tmp.write_text(lines, encoding="utf-8"))


def _is_local(url: str) -> bool:
    from urllib.parse import urlsplit

    return urlsplit(url).hostname in ("127.0.0.1", "localhost")
