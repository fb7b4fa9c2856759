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


def atomic_write(path: Path, write: Callable[[Path], object], mode: int = 0o644) -> Path:
    """Call ``write(tmp)`` on a temporary file next to ``path``, then rename it to ``path``.

    ``mode`` is set before the rename because ``mkstemp`` creates files 0600,
    and models and results are meant to be shared.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        tmp.chmod(mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_json_atomic(path: Path, data: Any, allow_nan: bool = True) -> Path:
    """Any JSON document, indented with sorted keys, written atomically."""
    text = json.dumps(data, indent=2, sort_keys=True, allow_nan=allow_nan) + "\n"
    return atomic_write(Path(path), lambda tmp: tmp.write_text(text, encoding="utf-8"))
