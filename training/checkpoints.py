"""Resumable training state, shared by both teacher kinds.

A teacher run is the longest step of the main job (half an hour on 2 cores,
hours with a larger cross-encoder), so a killed run must continue where it
stopped, not start over. A checkpoint holds the trainable weights, optimizer,
scheduler, torch RNG state (dropout) and step; with the seeded data order that
makes a resumed run take the same steps as an uninterrupted one. It carries a
fingerprint of the config and data, so a resume never mixes two runs.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from reranker_core.files import sync_renamed

from .models import ModelError, previous_copy, write_checkpoint

log = logging.getLogger(__name__)

STATE_FILE = "state.json"


@dataclass
class TrainingState:
    """Where a run is: optimizer steps taken, their losses, and counters the trainer keeps (pairs seen)."""

    step: int = 0
    losses: list[float] = field(default_factory=list)
    counters: dict[str, Any] = field(default_factory=dict)


def fingerprint(settings: dict[str, Any], rows: Iterable[str]) -> str:
    """A hash of the training settings and every training row: resuming is only sound with both unchanged."""
    h = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode())
    for row in rows:
        h.update(row.encode())
        h.update(b"\n")
    return h.hexdigest()


def save_state(ckpt: Path, model, optimizer, scheduler, state: TrainingState, key: str) -> None:
    """Write the checkpoint atomically (a kill while saving keeps the previous one)."""
    def save(tmp: Path) -> None:
        trainable = {n: p.detach().cpu() for n, p in model.named_parameters() if p.requires_grad}
        torch.save(trainable, tmp / "trainable.pt")
        torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                    "rng": torch.get_rng_state()}, tmp / "optim.pt")
        (tmp / STATE_FILE).write_text(json.dumps({"step": state.step, "losses": state.losses,
                                                  "counters": state.counters, "fingerprint": key}))

    write_checkpoint(ckpt, save, {"role": "training-checkpoint", "step": state.step})
    log.info("checkpoint at step %d in %s", state.step, ckpt)


def load_state(ckpt: Path, model, optimizer, scheduler, key: str) -> TrainingState:
    """Restore a checkpoint into ``model``/``optimizer``/``scheduler``; a fresh state when there is none.

    A kill between the two renames of a save leaves only the previous checkpoint,
    under its ``.old`` name: it is put back, not silently replaced by step 0.
    """
    ckpt = Path(ckpt)
    old = previous_copy(ckpt)
    if not ckpt.exists() and (old / STATE_FILE).is_file():
        os.replace(old, ckpt)
        sync_renamed(ckpt)
    path = ckpt / STATE_FILE
    if not path.is_file():
        return TrainingState()
    unreadable = ModelError(f"checkpoint {ckpt} is unreadable (a crash while it was written?)",
                            f"rerun with --restart (or delete {ckpt}) to start over")
    try:
        saved = json.loads(path.read_text())
        same = saved["fingerprint"] == key
    except (ValueError, KeyError, TypeError) as err:
        raise unreadable from err
    if not same:
        raise ModelError(f"checkpoint {ckpt} was made with another config or data",
                         "restore the config it was made with, or rerun with --restart to start over")
    try:  # map_location: a checkpoint saved on a GPU resumes on a CPU-only machine too
        weights = torch.load(ckpt / "trainable.pt", map_location="cpu")
        opt = torch.load(ckpt / "optim.pt", map_location="cpu")
    except (RuntimeError, EOFError, ValueError, pickle.UnpicklingError) as err:
        raise unreadable from err
    loaded = model.load_state_dict(weights, strict=False)
    if loaded.unexpected_keys:
        raise ModelError(f"checkpoint {ckpt} does not fit the model",
                         f"rerun with --restart (or delete {ckpt}) to start over")
    optimizer.load_state_dict(opt["optimizer"])
    scheduler.load_state_dict(opt["scheduler"])
    if "rng" in opt:
        torch.set_rng_state(opt["rng"])
    log.info("resuming from step %d", saved["step"])
    return TrainingState(int(saved["step"]), list(saved["losses"]), dict(saved.get("counters", {})))
