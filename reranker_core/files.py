"""Atomic file writes: a reader, or a crash half-way, never sees half a file.

Every output the project writes (model zips, pair files, results, plots, the
node's config) goes through :func:`atomic_write`: write a temporary file beside
the target, then rename it over the target.
"""
from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import OutputError


def atomic_write(path: Path, write: Callable[[Path], object], mode: int = 0o644) -> Path:
    """Call ``write(tmp)`` on a temporary file next to ``path``, then rename it to ``path``.

    ``mode`` is set before the rename because ``mkstemp`` creates files 0600,
    and models and results are meant to be shared.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as err:
        raise output_error(path, err) from err
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        tmp.chmod(mode)
        os.replace(tmp, path)
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        if disk_failure(err):
            raise output_error(path, err) from err
        raise
    return path


def disk_failure(err: BaseException) -> bool:
    """Whether ``err`` (or what it wraps: torch and safetensors re-raise I/O errors as their own) is the disk's."""
    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, OSError) and not isinstance(seen, (ConnectionError, TimeoutError)):
            return True
        text = str(seen)
        if any(s in text for s in ("No space left", "File too large", "Disk quota", "failed writing file")):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def output_error(path: Path, err: BaseException) -> OutputError:
    """One line naming the output and why it failed; atomic writes leave the previous file in place."""
    reason = getattr(err, "strerror", None) or (str(err).splitlines() or [type(err).__name__])[0]
    return OutputError(f"writing {path} failed ({reason}); the previous {Path(path).name}, if any, is untouched",
                       "free disk space or fix permissions on that folder, then rerun")


def write_json_atomic(path: Path, data: Any, allow_nan: bool = True) -> Path:
    """Any JSON document, indented with sorted keys, written atomically."""
    text = json.dumps(data, indent=2, sort_keys=True, allow_nan=allow_nan) + "\n"
    return atomic_write(Path(path), lambda tmp: tmp.write_text(text, encoding="utf-8"))


def default_home() -> Path:
    """Where downloaded artifacts, assembled models and the local node live (``RERANKER_HOME`` overrides)."""
    if os.environ.get("RERANKER_HOME"):
        return Path(os.environ["RERANKER_HOME"])
    if os.geteuid() == 0:
        return Path("/var/cache/reranker")
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "reranker"
