"""Step reuse for long jobs: a step is skipped when its inputs are exactly those of its last finished run.

A step's fingerprint hashes its name, the config it reads, the files it reads
(by content) and the fingerprints of the steps it depends on. The ledger
(``steps.json`` beside the outputs, written atomically) records a step only
once it finished, so

- rerunning after success skips every step;
- changing one config section reruns the steps that read it and, because
  fingerprints chain, every step downstream of them;
- a run killed mid-step finds that step unrecorded and runs it again (steps
  that can resume, such as augmentation and teacher training, pick up their
  own partial work).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .files import write_json_atomic

LEDGER = "steps.json"
_CHUNK = 1 << 20


def file_digest(path: Path) -> str:
    """sha256 of a file's bytes, or of a directory's files (names and bytes, sorted)."""
    h = hashlib.sha256()
    path = Path(path)
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        h.update(str(file.relative_to(path) if path.is_dir() else file.name).encode())
        with open(file, "rb") as f:
            while chunk := f.read(_CHUNK):
                h.update(chunk)
    return h.hexdigest()


def settings_of(section: Any, leave_out: Collection[str] = ()) -> Any:
    """A config section as every fingerprint reads it: its fields but ``leave_out`` and those at an off value
    (None, False, 0, empty). A setting added later, off by default, so leaves earlier runs' fingerprints as
    they were (their runs resume, their models are reused); any value that changes training still shows."""
    if not (dataclasses.is_dataclass(section) and not isinstance(section, type)):
        return section
    return {k: v for k, v in dataclasses.asdict(section).items() if k not in leave_out and v not in _OFF}


_OFF = (None, False, 0, "", [], {}, ())  # 0 == 0.0 == False: one off value per kind


@dataclass(frozen=True)
class Step:
    """What a step reads: config sections (any JSON-able values or dataclasses), files, and upstream steps."""

    name: str
    config: tuple[Any, ...] = ()
    files: tuple[Path, ...] = ()
    after: tuple[str, ...] = ()
    outputs: tuple[Path, ...] = ()  # must all exist for a recorded step to count as done


class Ledger:
    """Fingerprints and finished steps of one job, kept in ``<directory>/steps.json``."""

    def __init__(self, directory: Path) -> None:
        self.path = Path(directory) / LEDGER
        self.done: dict[str, str] = {}
        if self.path.is_file():
            try:
                self.done = dict(json.loads(self.path.read_text(encoding="utf-8")).get("done", {}))
            except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
                self.done = {}  # an unreadable ledger only costs a rerun
        self.fingerprints: dict[str, str] = {}

    def fingerprint(self, step: Step) -> str:
        """The step's inputs as one hash; an upstream step must have been fingerprinted first."""
        h = hashlib.sha256(step.name.encode())
        h.update(json.dumps([settings_of(c) for c in step.config], sort_keys=True, default=str).encode())
        for file in step.files:
            h.update(file_digest(file).encode() if Path(file).exists() else b"missing")
        for name in step.after:
            h.update(self.fingerprints[name].encode())
        self.fingerprints[step.name] = h.hexdigest()
        return self.fingerprints[step.name]

    def is_done(self, step: Step) -> bool:
        """Fingerprint ``step``; True when it finished before with these inputs and its outputs still exist."""
        stamp = self.fingerprint(step)
        return self.done.get(step.name) == stamp and all(Path(o).exists() for o in step.outputs)

    def record(self, step: Step) -> None:
        """Mark ``step`` finished with the fingerprint it was given (call only after it succeeded)."""
        self.done[step.name] = self.fingerprints[step.name]
        write_json_atomic(self.path, {"done": self.done})

    def run(self, step: Step, action: Callable[[], object], on_skip: Callable[[], None] | None = None) -> bool:
        """Run ``action`` unless ``step`` is done; record it after success. Returns True when it ran."""
        if self.is_done(step):
            if on_skip:
                on_skip()
            return False
        action()
        self.record(step)
        return True


