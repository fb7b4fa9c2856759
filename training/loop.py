"""The one cross-encoder training loop, shared by the teacher and the students.

Every trainer here is the same loop: AdamW with linear warmup and decay,
clipped gradients, optional bf16 autocast, gradient accumulation, a seeded
batch order per epoch, resumable checkpoints (:mod:`training.checkpoints`),
progress and a validation curve. What differs is the data and the loss, so a
role (the LLM teacher, the student) hands in an :class:`Objective`: its
epochs' batches, the forward pass, and the loss on what the forward returned.

Resuming is exact: the order of an epoch is a function of the epoch alone, so
a run restarted at step ``s`` skips the ``s mod per_epoch`` batches already
taken and, with the restored weights, optimizer, scheduler and RNG, takes the
same steps as an uninterrupted run.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import torch

from .checkpoints import TrainingState, load_state, save_state

B = TypeVar("B")  # one micro-batch, as the role defines it (here: a list of row indices)
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Objective(Generic[B]):
    """What a role trains on and how its loss is computed.

    ``epoch(e)`` is epoch ``e``'s steps in order, each a list of micro-batches
    whose gradients are accumulated (one micro-batch without accumulation).
    ``forward(batch, step)`` runs the model (under autocast when ``precision`` is
    bf16; ``step`` seeds per-step randomness such as perturbed queries) and
    ``loss(batch, out)`` turns its output into a scalar in full precision.
    ``adversary``, when set, is entered after each micro-batch's backward pass;
    where it yields True (the model moved, e.g. :class:`training.adversarial.FGM`)
    the same micro-batch's loss is taken again inside it and its gradient added.
    """

    epoch: Callable[[int], Sequence[Sequence[B]]]
    forward: Callable[[B, int], Any]
    loss: Callable[[B, Any], torch.Tensor]
    adversary: Callable[[], AbstractContextManager[bool]] | None = None


@dataclass(frozen=True)
class Schedule:
    """How long and how fast: steps, warmup steps, learning rate, accumulation and checkpoint cadence."""

    total: int
    warmup: int
    learning_rate: float
    grad_accum: int = 1  # each micro-batch's loss is divided by this (as in one batch of grad_accum micro-batches)
    precision: str = "fp32"  # bf16: the forward pass under autocast (weights and loss stay fp32)
    checkpoint_every: int = 50


@dataclass(frozen=True)
class Trained:
    """Where the loop stopped: steps, per-step losses, counters (pairs seen, curve) and the step it resumed at."""

    step: int
    losses: list[float]
    pairs_seen: int
    curve: list[dict]
    resumed_from: int


def train_loop(model: torch.nn.Module, objective: Objective, schedule: Schedule, key: str, device: str,
               checkpoint: Path | None = None, resume: bool = False, progress: Progress | None = None,
               curve: Callable[[], dict] | None = None, curve_points: int = 0) -> Trained:
    """Train ``model``'s trainable parameters for ``schedule.total`` optimizer steps on ``objective``.

    With ``checkpoint``, the state is saved there every ``checkpoint_every`` steps
    and after the last one (a kill while the caller writes its output costs no
    training), tagged with ``key`` (the fingerprint of config and data); with
    ``resume`` it is restored from there first. With ``curve``, the model is
    measured at ``curve_points`` evenly spaced steps, the last one included.
    The model is left in eval mode.
    """
    from transformers import get_linear_schedule_with_warmup

    total = schedule.total
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=schedule.learning_rate, weight_decay=0.01)
    scheduler = get_linear_schedule_with_warmup(optimizer, schedule.warmup, total)
    state = load_state(checkpoint, model, optimizer, scheduler, key) if checkpoint and resume else TrainingState()
    step, losses, resumed_from = state.step, state.losses, state.step
    pairs_seen = state.counters.get("pairs_seen", 0)
    measured: list[dict] = list(state.counters.get("curve", []))
    measure_at = {max(1, round(total * (i + 1) / curve_points)) for i in range(curve_points)} if curve else set()
    per_epoch = len(objective.epoch(0))
    autocast = torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=schedule.precision == "bf16")
    model.train()
    while step < total:
        epoch, done = divmod(step, per_epoch)  # the seeded order of this epoch, past the steps already taken
        for micro_batches in objective.epoch(epoch)[done:]:
            if step >= total:
                break
            step_loss = 0.0
            for batch in micro_batches:
                pairs_seen += len(batch)
                with autocast:
                    out = objective.forward(batch, step)
                loss = objective.loss(batch, out)
                (loss / schedule.grad_accum).backward()
                step_loss += loss.item() / schedule.grad_accum
                if objective.adversary:
                    with objective.adversary() as moved:
                        if moved:
                            with autocast:
                                out = objective.forward(batch, step)
                            (objective.loss(batch, out) / schedule.grad_accum).backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            losses.append(step_loss)
            if step in measure_at:
                measured.append({"step": step, "epochs": round(step / per_epoch, 3), "pairs_seen": pairs_seen,
                                 **curve()})
                model.train()
            if checkpoint and (step % schedule.checkpoint_every == 0 or step == total):
                save_state(checkpoint, model, optimizer, scheduler,
                           TrainingState(step, losses, {"pairs_seen": pairs_seen, "curve": measured}), key)
            if progress:
                progress(step, total)
    model.eval()
    return Trained(step, losses, pairs_seen, measured, resumed_from)
