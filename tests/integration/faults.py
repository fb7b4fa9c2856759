"""Harness for the fault campaign: run the real CLI in a subprocess, kill it at a chosen moment, record the case.

Each case says what the user sees and what is left on disk and in the cluster;
``benchmarks/faults.py`` runs the campaign and collects the records into a JSON
table (``RERANKER_FAULTS_JSON`` names the file the records are appended to).
"""
from __future__ import annotations

import json
import os
import queue
import re
import resource
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

CLI = [sys.executable, "-c", "from reranker_plugin.cli import main; main()"]


@dataclass
class Finished:
    code: int
    out: str
    err: str

    @property
    def last_line(self) -> str:
        lines = [line for line in self.err.strip().splitlines() if line.strip()]
        return lines[-1] if lines else ""


def run_cli(cwd: Path, url: str, *args: str, file_size_limit: int | None = None,
            timeout: float = 300) -> Finished:
    """The CLI to completion; ``file_size_limit`` (bytes) makes every larger write fail as a full disk would."""
    def limit() -> None:
        if file_size_limit is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (file_size_limit, file_size_limit))
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # then the write fails with EFBIG instead of a kill

    done = subprocess.run([*CLI, "--url", url, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          preexec_fn=limit, env={**os.environ, "COLUMNS": "200"})
    return Finished(done.returncode, done.stdout, done.stderr)


def kill_when(cwd: Path, url: str, args: tuple[str, ...], ready: Callable[[], bool] = lambda: True,
              after_s: float = 0.0, timeout: float = 180, poll_s: float = 0.02) -> float:
    """Start the CLI, SIGKILL it once it ran ``after_s`` and ``ready()`` holds; returns seconds it ran.

    Fails if the command ends first: the case would not test what it says.
    """
    started = time.monotonic()
    proc = subprocess.Popen([*CLI, "--url", url, *args], cwd=cwd, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        while time.monotonic() - started < timeout:
            if proc.poll() is not None:
                raise AssertionError(f"{args[0]} finished (exit {proc.returncode}) before the kill point: "
                                     f"{proc.stderr.read()[-500:]}")
            if time.monotonic() - started >= after_s and ready():
                proc.send_signal(signal.SIGKILL)
                proc.wait(timeout=30)
                return time.monotonic() - started
            time.sleep(poll_s)
        raise AssertionError(f"{args[0]} never reached the kill point in {timeout}s")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


PROGRESS_LINE = re.compile(r"^(?P<what>.+?): (?P<done>\d+)/(?P<total>\d+) (?P<unit>\w+),")


@dataclass
class KillPoint:
    """Where a command was when it was killed, from its own last progress line."""
    what: str
    done: int
    total: int
    unit: str
    seconds: float

    def __str__(self) -> str:
        return (f"at {self.done}/{self.total} {self.unit} ({self.done / self.total:.0%}) of '{self.what}', "
                f"{self.seconds:.1f}s in")


class Watched:
    """The CLI in a subprocess whose progress lines (one per update: ``RERANKER_PROGRESS_EVERY_S=0``) are read
    as they come, so a test acts when the step itself says how far it is, not after a guessed time."""

    def __init__(self, cwd: Path, url: str, args: tuple[str, ...]) -> None:
        self.args, self.started = args, time.monotonic()
        self.proc = subprocess.Popen([*CLI, "--url", url, *args], cwd=cwd, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True,
                                     env={**os.environ, "RERANKER_PROGRESS_EVERY_S": "0", "COLUMNS": "200"})
        self.lines: queue.Queue[str] = queue.Queue()
        self.err: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stderr:  # type: ignore[union-attr]
            self.err.append(line)
            self.lines.put(line)

    def wait_for(self, fraction: float, what: str = "", ready: Callable[[], bool] = lambda: True,
                 timeout: float = 300) -> KillPoint:
        """Block until a progress line of a step whose description contains ``what`` reports at least
        ``fraction`` done and ``ready()`` holds. Fails if the command ends first: the case would not test
        what it says."""
        while time.monotonic() - self.started < timeout:
            try:
                line = self.lines.get(timeout=0.05)
            except queue.Empty:
                if self.proc.poll() is not None and self.lines.empty():
                    raise AssertionError(f"{self.args[0]} finished (exit {self.proc.returncode}) before "
                                         f"{fraction:.0%} of '{what}': {''.join(self.err)[-800:]}") from None
                continue
            found = PROGRESS_LINE.match(line.strip())
            done, total = (int(found["done"]), int(found["total"])) if found else (0, 0)
            if found and what in found["what"] and fraction * total <= done < total and ready():  # mid-step
                return KillPoint(found["what"], done, total, found["unit"], time.monotonic() - self.started)
        raise AssertionError(f"{self.args[0]} never reached {fraction:.0%} of '{what}' in {timeout}s")

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def finish(self, timeout: float = 600) -> tuple[int, str]:
        """Exit code and stderr once the command ends by itself."""
        self.proc.wait(timeout=timeout)
        time.sleep(0.1)  # the reader drains the pipe
        return self.proc.returncode, "".join(self.err)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def kill_at_progress(cwd: Path, url: str, args: tuple[str, ...], fraction: float, what: str = "",
                     ready: Callable[[], bool] = lambda: True, timeout: float = 300) -> KillPoint:
    """SIGKILL the CLI once its progress says ``fraction`` of step ``what`` is done (and ``ready()``)."""
    watched = Watched(cwd, url, args)
    try:
        point = watched.wait_for(fraction, what, ready, timeout)
        watched.kill()
        return point
    finally:
        watched.close()


@dataclass
class FullDisk:
    """A folder on a full file system; ``run`` runs the CLI against it, ``free`` frees space for the rerun."""
    path: Path
    mounted: bool  # a real full tmpfs; else RLIMIT_FSIZE stands in (mounting needs root)
    filler: Path | None = None

    def run(self, cwd: Path, url: str, *args: str) -> Finished:
        limit = None if self.mounted or self.filler is None else 1  # after free(): no limit
        return run_cli(cwd, url, *args, file_size_limit=limit)

    def free(self) -> None:
        """Delete the filler and grow the tmpfs to 1 GB (tmpfs takes memory only as it is written)."""
        if self.filler is not None:
            self.filler.unlink(missing_ok=True)
            self.filler = None
        if self.mounted:
            subprocess.run(["mount", "-o", "remount,size=1g", str(self.path)], check=True, capture_output=True)

    def refused_then_rerun(self, cwd: Path, url: str, *args: str, target: Path | None = None) -> str:
        """Run the CLI on the full disk: one ``error:`` line naming the disk and the fix, no traceback, no temp
        file (and nothing under ``target``, if given); then free space and rerun, which must succeed.

        Returns the error line, with the disk's path written ``<full disk>``."""
        full = self.run(cwd, url, *args)
        assert full.code == 1 and "Traceback" not in full.err, full.err[-2000:]
        line = full.last_line
        assert line.startswith("error:") and str(self.path) in line and "free disk space" in line, line
        assert not (target and target.exists()) and no_temp_files(self.path), sorted(self.path.rglob("*"))
        self.free()
        rerun = self.run(cwd, url, *args)
        assert rerun.code == 0, rerun.err[-2000:]
        return line.replace(str(self.path), "<full disk>")

    def __str__(self) -> str:
        return "disk full (a full 4 MB tmpfs)" if self.mounted else "disk full (a 1-byte file size limit)"


@contextmanager
def full_disk(root: Path, size_mb: int = 4) -> Iterator[FullDisk]:
    """A ``size_mb`` tmpfs mounted under ``root`` and filled to the last byte (one filler file), so every write
    there fails with ENOSPC as on a real full disk; where mounting is refused, RLIMIT_FSIZE on the CLI."""
    folder = root / "full-disk"
    folder.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(folder)],
                             capture_output=True).returncode == 0
    filler = folder / "filler"
    try:
        if mounted:
            with filler.open("wb", buffering=0) as fh:  # unbuffered: the last partial write fills it exactly
                try:
                    while True:
                        fh.write(b"\0" * 65536)
                except OSError:
                    pass
            assert os.statvfs(folder).f_bavail == 0, "the tmpfs is not full"
        yield FullDisk(folder, mounted, filler)
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(folder)], check=False)


def no_temp_files(folder: Path) -> bool:
    """No ``.name.*.tmp`` (atomic writes' temporary files) left anywhere under ``folder``."""
    return not [p for p in folder.rglob(".*") if p.name.endswith(".tmp")]


def trained_teacher(cwd: Path, url: str) -> Path:
    """The project's tiny teacher (``runs/teacher``), trained by the CLI on first use."""
    if not (cwd / "runs/teacher/reranker.json").exists():
        done = run_cli(cwd, url, "train-teacher")
        assert done.code == 0, done.err
    return cwd / "runs/teacher"


def record(case: str, fault: str, user_sees: str, left: str) -> None:
    """Append one row of the campaign's table (when the runner asked for it)."""
    target = os.environ.get("RERANKER_FAULTS_JSON")
    if not target:
        return
    with open(target, "a", encoding="utf-8") as fh:
        fh.write(json.dumps({"case": case, "fault": fault, "user_sees": user_sees, "left": left}) + "\n")
