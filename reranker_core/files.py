"""Atomic file writes: a reader, or a crash half-way, never sees half a file.

Every output the project writes (model zips, pair files, results, plots, the
node's config) goes through :func:`atomic_write`: write a temporary file beside
the target, then rename it over the target. The rename alone only orders things
for readers: after a power cut the file system may have kept the rename but not
the data, leaving an empty file under the final name. So the temporary file is
fsynced before the rename and its folder after it (:func:`fsync_path`);
directories renamed into place (checkpoints, unpacked models) use
:func:`fsync_tree`. ``benchmarks/fsync_cost.py`` measures what that costs.
"""
from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import OutputError


def atomic_write(path: Path, write: Callable[[Path], object], mode: int = 0o644, durable: bool = True) -> Path:
    """Call ``write(tmp)`` on a temporary file next to ``path``, then rename it to ``path``.

    ``mode`` is set before the rename because ``mkstemp`` creates files 0600,
    and models and results are meant to be shared. ``durable=False`` skips the
    fsyncs; only the benchmark that prices them uses it.
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
        if durable:
            fsync_path(tmp)
        os.replace(tmp, path)
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        if disk_failure(err):
            raise output_error(path, err) from err
        raise
    if durable:
        sync_renamed(path)
    return path


def fsync_path(path: Path) -> None:
    """Flush a file's data, or a folder's entries, to the disk (a folder: which names point where)."""
    directory = Path(path).is_dir()
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if directory else 0))
    try:
        os.fsync(fd)
    except OSError as err:  # some file systems (network, FUSE) cannot sync a folder: nothing more to do there
        if not (directory and err.errno in (errno.EINVAL, errno.ENOTSUP)):
            raise
    finally:
        os.close(fd)


def fsync_tree(root: Path) -> None:
    """fsync every file and folder under ``root``, deepest first: before renaming a finished folder into place."""
    for folder, _, files in os.walk(root, topdown=False):
        for name in files:
            fsync_path(Path(folder) / name)
        fsync_path(Path(folder))


def sync_renamed(path: Path) -> None:
    """After renaming onto ``path``: make the rename itself durable by syncing the folder that holds it."""
    try:
        fsync_path(Path(path).parent)
    except OSError as err:
        raise OutputError(f"{path} is in place but syncing its folder failed ({err.strerror or err}); "
                          "a power cut now could lose it", "check the disk (dmesg), then rerun") from err


TORCH_WRITE_FAILURES = ("unexpected pos", "iostream error")  # torch.save's zip writer on ENOSPC: no errno


def _no_space(folder: Path) -> bool:
    """Whether the file system holding ``folder`` (or its nearest existing parent) has no byte left."""
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        return shutil.disk_usage(folder).free == 0
    except OSError:
        return False


def disk_failure(err: BaseException) -> bool:
    """Whether ``err`` (or what it wraps: torch and safetensors re-raise I/O errors as their own) is the disk's."""
    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, OSError) and not isinstance(seen, (ConnectionError, TimeoutError)):
            return True
        text = str(seen)
        if any(s in text for s in ("No space left", "File too large", "Disk quota", "failed writing file",
                                   *TORCH_WRITE_FAILURES)):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def output_error(path: Path, err: BaseException) -> OutputError:
    """One line naming the output and why it failed; atomic writes leave the previous file in place."""
    reason = getattr(err, "strerror", None) or (str(err).splitlines() or [type(err).__name__])[0]
    if not getattr(err, "strerror", None) and _no_space(Path(path).parent):
        reason = "No space left on device"  # torch's stream writer reports ENOSPC as "unexpected pos ..."
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
