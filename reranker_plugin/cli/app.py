"""The `reranker` click group and what every verb module shares.

The group loads the config and hands commands a :class:`Context`; every
:class:`RerankerError` below it becomes one line on stderr and a non-zero exit.
Verb modules (node, serve, train, jobs, run) import only this module and lower
layers; ``reranker_plugin.cli`` imports them to register their commands. Heavy
libraries (torch, transformers) are imported inside commands only, so
``reranker --help`` stays instant.
"""
from __future__ import annotations

import errno
import logging
import os
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)

from reranker_core.config import DATA_KINDS, Config, load_config, override
from reranker_core.errors import RerankerError
from reranker_core.output import Output
from reranker_core.redact import REDACTING_FILTER, redact_url

console = Console()
err_console = Console(stderr=True)


class Context:
    """What the group passes to commands: the loaded config, and the --url given on the command line (if any)."""

    def __init__(self, config: Config, verbose: bool = False, url: str | None = None) -> None:
        self.config = config
        self.verbose = verbose
        self.url = url

    def quiet_models(self) -> None:
        """Silence transformers' load reports and tqdm bars (unless -v): our progress display says enough."""
        if not self.verbose:
            from transformers.utils import logging as hf_logging

            hf_logging.set_verbosity_error()
            hf_logging.disable_progress_bar()

    def client(self):
        from ..connection import connect

        return connect(self.config.cluster)

    @property
    def output(self) -> ConsoleOutput:
        """Where the Python API's steps report when a verb calls them: the terminal."""
        return ConsoleOutput()


pass_ctx = click.make_pass_decorator(Context)


class ConsoleOutput(Output):
    """The API's :class:`Output` on the terminal: lines on stdout, warnings on stderr, rich progress bars."""

    def say(self, message: object) -> None:
        console.print(message)

    def verbatim(self, line: str) -> None:
        console.print(line, highlight=False, markup=False, soft_wrap=True)

    def warn(self, line: str) -> None:
        err_console.print(line, highlight=False)

    def heading(self, title: str) -> None:
        console.rule(f"[bold]{escape(title)}")

    @contextmanager
    def progress(self, description: str, unit: str = "steps") -> Iterator[Callable[[int, int], None]]:
        with progress_bar(description, unit) as update:
            yield update

    @contextmanager
    def stages(self) -> Iterator[Callable[[str, int, int], None]]:
        columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                   TimeElapsedColumn())
        with Progress(*columns, console=err_console, transient=True) as progress:
            tasks: dict[str, TaskID] = {}

            def report(stage: str, done: int, total: int) -> None:
                if stage not in tasks:
                    tasks[stage] = progress.add_task(stage, total=total)
                progress.update(tasks[stage], completed=done)

            yield report

    def status(self, text: str):
        return console.status(text)


class Deprecated:
    """An old option spelling: what it now reads as, and the one warning line it prints."""

    def __init__(self, replacement: tuple[str, ...], advice: str) -> None:
        self.replacement = replacement
        self.advice = advice


def renamed(new: str) -> Deprecated:
    """An option that only changed its name: ``--out`` -> ``--output``."""
    return Deprecated((new,), f"use {new}")


class GrammarCommand(click.Command):
    """A command whose deprecated option spellings still parse for one release, each with a warning on stderr.

    ``old_spellings`` maps an old spelling to :class:`Deprecated`; the old spelling
    is rewritten before click parses, so it never shows in ``--help`` and the
    exit code is that of the new spelling.
    """

    def __init__(self, *args, old_spellings: dict[str, Deprecated] | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.old_spellings = old_spellings or {}

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, rewrite_deprecated(args, self.old_spellings))


def rewrite_deprecated(args: list[str], deprecated: dict[str, Deprecated]) -> list[str]:
    """``args`` with each deprecated spelling (``--out X``, ``--out=X``) replaced; one warning line per spelling."""
    rewritten: list[str] = []
    warned: set[str] = set()
    for i, arg in enumerate(args):
        if arg == "--":
            return rewritten + args[i:]
        old, _, value = arg.partition("=")
        found = deprecated.get(old)
        if found is None:
            rewritten.append(arg)
            continue
        if old not in warned:
            click.echo(f"warning: {old} is deprecated; {found.advice}", err=True)
            warned.add(old)
        if value and found.replacement:
            rewritten += [*found.replacement[:-1], f"{found.replacement[-1]}={value}"]
        else:
            rewritten += found.replacement
    return rewritten


restart_option = click.option("--restart", is_flag=True,
                              help="Ignore earlier work and start over (resuming is the default).")
#: C0 control characters as visible escapes (``\n`` stays readable as such), tab excepted.
CONTROL_ESCAPES = {c: f"\\x{c:02x}" for c in range(32) if c != 9} | {10: "\\n", 13: "\\r"}


class _Group(click.Group):
    """Turns a :class:`RerankerError` anywhere below into one line on stderr and its exit code.

    An ``OSError`` that escaped (a full disk under a library's own file write,
    say) gets the same one line: the user needs the file and the reason, not a
    traceback. Outputs are written atomically, so the previous ones are intact.
    """

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        """No argument may hold a NUL byte: no path, URL or query can, and the OS would raise deep inside."""
        bad = next((a for a in args if "\x00" in a), None)
        if bad is not None:
            raise click.UsageError(f"argument {bad!r} holds a NUL byte; remove it", ctx)
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except RerankerError as err:
            self._fail(ctx, str(err), err.exit_code)
        except OSError as err:
            where = f" ({err.filename})" if err.filename else ""
            fix = ("free disk space, then rerun; finished outputs are untouched"
                   if err.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT) else "check the path and its permissions")
            self._fail(ctx, f"{err.strerror or err}{where} — {fix}", 1)

    @staticmethod
    def _fail(ctx: click.Context, message: str, code: int) -> None:
        message = redact_url(message).translate(CONTROL_ESCAPES)  # a newline in a path must not split the line
        err_console.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)
        ctx.exit(code)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
              help="YAML config (default: ./reranker.yaml if present). Flags override it.")
@click.option("--url", help="OpenSearch URL (overrides cluster.url and OPENSEARCH_URL).")
@click.option("-v", "--verbose", is_flag=True, help="Log progress details.")
@click.pass_context
def cli(ctx: click.Context, config_path: Path | None, url: str | None, verbose: bool) -> None:
    """Distilled cross-encoder reranking for OpenSearch.

    Start a local node, deploy an exported model zip into ML Commons behind a
    rerank search pipeline, and compare search results with and without it.

    Example:

    \b
      reranker cluster up
      reranker run --data data/train.csv.zip --kind homedepot
      reranker search "cordless drill"
    """
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(message)s")
    # opensearch-py logs every failed attempt with a traceback; our errors say it in one line.
    logging.getLogger("opensearch").setLevel(logging.INFO if verbose else logging.CRITICAL)
    for handler in logging.getLogger().handlers:  # no log line shows a cluster URL's user and password
        handler.addFilter(REDACTING_FILTER)
    if not verbose:  # transformers' load reports and tqdm bars would drown our own progress display
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        os.environ.setdefault("TQDM_DISABLE", "1")  # e.g. the GGUF dequantizer's bar; read when tqdm is imported
        warnings.filterwarnings("ignore", category=UserWarning)
        warnings.filterwarnings("ignore", category=FutureWarning)
    config = load_config(config_path)
    if url:
        config = override(config, cluster=override(config.cluster, url=url))
    ctx.obj = Context(config, verbose, url)


LOG_EVERY_S = 60.0  # progress lines in a log file (no terminal): one a minute
PROGRESS_EVERY_ENV = "RERANKER_PROGRESS_EVERY_S"  # overrides it: 0 prints a line per update (the fault tests)


def log_every_s() -> float:
    """Seconds between progress lines in a log: ``$RERANKER_PROGRESS_EVERY_S`` if a number >= 0, else a minute."""
    try:
        value = float(os.environ.get(PROGRESS_EVERY_ENV, LOG_EVERY_S))
    except ValueError:
        return LOG_EVERY_S
    return value if value >= 0 else LOG_EVERY_S


@contextmanager
def progress_bar(description: str, unit: str = "steps") -> Iterator[Callable[[int, int], None]]:
    """A rich progress bar with rate; yields ``update(done, total)``.

    Where stderr is not a terminal (a ``nohup`` log, CI) a live bar draws nothing
    until it ends, so plain lines are written instead, one every ``LOG_EVERY_S``
    seconds (``$RERANKER_PROGRESS_EVERY_S``) and one at the end: a step that
    takes hours shows that it moves, and a watcher can tell how far it is.
    """
    if not err_console.is_terminal:
        with progress_lines(description, unit, log_every_s()) as update:
            yield update
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn())
    with Progress(*columns, console=err_console, transient=False) as progress:
        task = progress.add_task(description, total=None, rate="")
        rate = Rate()

        def update(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total, rate=f"{per_second(rate(done))} {unit}/s")

        yield update


class Rate:
    """Items per second since the first update, so a resumed step (first update: 501 of 700) is not
    credited with the work done before it started; before a second update, since the bar opened."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.first: tuple[int, float] | None = None

    def __call__(self, done: int) -> float:
        now = time.monotonic()
        if self.first is None:
            self.first = (done, now)
        first_done, first_at = self.first
        if done > first_done and now > first_at:
            return (done - first_done) / (now - first_at)
        return done / max(now - self.started, 1e-9)


@contextmanager
def progress_lines(description: str, unit: str, every_s: float = LOG_EVERY_S
                   ) -> Iterator[Callable[[int, int], None]]:
    """``update(done, total)`` that prints a line at most every ``every_s`` seconds, and the last state."""
    rate = Rate()
    state = {"done": 0, "total": 0, "rate": 0.0, "printed": rate.started, "shown": None}

    def line() -> None:
        done, total, speed = state["done"], state["total"], state["rate"]
        eta = _clock((total - done) / speed) if speed and total else "?"
        err_console.print(f"{description}: {done}/{total} {unit}, {per_second(speed)} {unit}/s, "
                          f"{_clock(time.monotonic() - rate.started)} elapsed, eta {eta}", highlight=False, soft_wrap=True)
        state["printed"], state["shown"] = time.monotonic(), (done, total)

    def update(done: int, total: int) -> None:
        state["done"], state["total"], state["rate"] = done, total, rate(done)
        if time.monotonic() - state["printed"] >= every_s:
            line()

    yield update
    if state["total"] and state["shown"] != (state["done"], state["total"]):
        line()


def per_second(rate: float) -> str:
    """A rate with two significant digits below 1 (an MPNet teacher: 0.11 steps/s, not 0.1)."""
    return f"{rate:.2f}" if rate < 1 else f"{rate:.1f}"


def _clock(seconds: float) -> str:
    """``h:mm:ss``."""
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{secs:02d}"


def load_data(config: Config):
    """The configured judged dataset, read once per process (``training.datasets.load_data``; imported here
    lazily so ``reranker --help`` stays instant)."""
    from training.datasets import load_data as load

    return load(config)


def with_data(config: Config, data: Path | None, kind: str | None) -> Config:
    """``config`` with --data / --kind applied."""
    return override(config, data=override(config.data, path=str(data) if data else None, kind=kind))


data_option = click.option("--data", type=click.Path(path_type=Path), help="Dataset file or directory [data.path].")
kind_option = click.option("--kind", type=click.Choice(DATA_KINDS),
                           help="Dataset format [data.kind].")


def engine_options(command):
    """--engine and --ray-address: where augment / label run."""
    command = click.option("--ray-address",
                           help="Ray cluster to join: ray://head:10001 or auto [engine.ray_address; "
                                "unset: a Ray started on this machine].")(command)
    return click.option("--engine", type=click.Choice(["local", "ray"]),
                        help="Run here, or as a Ray Data pipeline on a Ray cluster [engine.kind].")(command)


def with_engine(config, engine: str | None, ray_address: str | None):
    """``config`` with the engine flags applied (a --ray-address implies --engine ray)."""
    kind = engine or ("ray" if ray_address else None)
    return override(config, engine=override(config.engine, kind=kind, ray_address=ray_address))
