"""Harness for the fault campaign: run the real CLI in a subprocess, kill it at a chosen moment, record the case.

Each case says what the user sees and what is left on disk and in the cluster;
``benchmarks/faults.py`` runs the campaign and collects the records into a JSON
table (``RERANKER_FAULTS_JSON`` names the file the records are appended to).
"""
from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Callable
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
