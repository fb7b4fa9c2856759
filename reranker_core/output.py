"""Where a step of the Python API reports to: lines for the user, warnings, progress.

The steps (``training.api``, ``reranker_plugin.jobs.api``, ``reranker_plugin.jobs.main_job``) take an
:class:`Output` so they can be called from Python without a terminal; this base class says nothing. The
command line passes one that prints with rich (``reranker_plugin.cli.app.ConsoleOutput``), so a verb and
`reranker run` print the same lines from the same code.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import ContextManager, cast

Update = Callable[[int, int], None]       # update(done, total)
Stage = Callable[[str, int, int], None]   # report(stage, done, total)


def _nothing(*_: object) -> None:
    return None


class Output:
    """A quiet output: every method does nothing. Subclass it to show what a step reports."""

    def say(self, message: object) -> None:
        """A line (or a rich renderable, such as a table) for stdout."""

    def verbatim(self, line: str) -> None:
        """A line for stdout, printed exactly as given (no markup, no highlighting)."""

    def warn(self, line: str) -> None:
        """A line for stderr."""

    def heading(self, title: str) -> None:
        """The start of a step of a longer job."""

    @contextmanager
    def progress(self, description: str, unit: str = "steps") -> Iterator[Update]:
        """A progress display for the block; yields ``update(done, total)``."""
        yield cast(Update, _nothing)

    @contextmanager
    def stages(self) -> Iterator[Stage]:
        """A display of several named stages; yields ``report(stage, done, total)``."""
        yield cast(Stage, _nothing)

    def status(self, text: str) -> ContextManager[object]:
        """A transient 'working on it' note for the block."""
        return _quiet_block()


@contextmanager
def _quiet_block() -> Iterator[None]:
    yield None


QUIET = Output()
