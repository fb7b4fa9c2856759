"""The shared training loop against a plain hand-written one: same losses and weights step for step.

The teacher's and the student's trainers are this loop plus a loss; their own
tests (test_teacher, test_student) check them against :func:`reference_training`
on tiny real models. Here a linear model checks the mechanics themselves:
accumulation over a short last step, the seeded order across an epoch boundary,
and resuming a killed run from its checkpoint.
"""
from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
import torch

from training.loop import Objective, Schedule, train_loop

MicroLoss = Callable[[], torch.Tensor]


def reference_training(params: Sequence[torch.nn.Parameter], steps: Sequence[Sequence[MicroLoss]],
                       learning_rate: float, warmup: int, total: int, grad_accum: int = 1) -> list[float]:
    """The textbook loop: AdamW (weight decay 0.01), linear warmup then linear decay to 0 at ``total``, each
    micro-batch's loss divided by ``grad_accum``, gradients clipped to norm 1. ``steps`` are called in order,
    so each forward pass sees the weights of the steps before it. Returns the per-step losses."""
    params = list(params)
    optimizer = torch.optim.AdamW(params, lr=learning_rate, weight_decay=0.01)

    def factor(s: int) -> float:
        return s / max(1, warmup) if s < warmup else max(0.0, (total - s) / max(1, total - warmup))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    losses = []
    for micro_losses in steps:
        step_loss = 0.0
        for micro in micro_losses:
            loss = micro()
            (loss / grad_accum).backward()
            step_loss += loss.item() / grad_accum
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(step_loss)
    return losses


X = torch.linspace(-1, 1, 7 * 3).reshape(7, 3)
Y = torch.tensor([1.0, -2.0, 0.5, 3.0, -1.0, 0.0, 2.0]) / 20  # small: gradients stay under the clipping norm


def _epoch(e: int) -> list[list[list[int]]]:
    """7 rows, 2 micro-batches of 3 per step: steps of 6 rows and of 1 (one micro-batch, still divided by 2)."""
    order = list(range(7))
    random.Random(e).shuffle(order)
    return [[order[0:3], order[3:6]], [order[6:7]]]


def _linear() -> torch.nn.Linear:
    torch.manual_seed(3)
    return torch.nn.Linear(3, 1)


def _objective(model: torch.nn.Linear) -> Objective:
    return Objective(_epoch, lambda idx, _step: model(X[idx])[:, 0],
                     lambda idx, out: torch.nn.functional.mse_loss(out, Y[idx]))


SCHEDULE = Schedule(total=5, warmup=2, learning_rate=0.1, grad_accum=2, checkpoint_every=3)


def test_the_loop_takes_the_steps_of_the_reference_loop_across_an_epoch_boundary():
    model = _linear()
    trained = train_loop(model, _objective(model), SCHEDULE, key="k", device="cpu")

    reference = _linear()
    steps = [step for e in range(3) for step in _epoch(e)][:5]
    expected = reference_training(reference.parameters(), [
        [lambda idx=idx: torch.nn.functional.mse_loss(reference(X[idx])[:, 0], Y[idx]) for idx in step]
        for step in steps], learning_rate=0.1, warmup=2, total=5, grad_accum=2)
    assert trained.step == 5 and trained.pairs_seen == 7 + 7 + 6
    assert trained.losses == pytest.approx(expected, abs=1e-6)
    assert torch.allclose(model.weight, reference.weight, atol=1e-6)
    assert torch.allclose(model.bias, reference.bias, atol=1e-6)
    assert not torch.allclose(model.weight, _linear().weight, atol=1e-3)  # it trained at all


def test_a_killed_loop_resumes_from_its_checkpoint_to_the_same_weights(tmp_path: Path):
    class Killed(Exception):
        pass

    def kill_at_4(done: int, total: int) -> None:
        if done == 4:
            raise Killed

    ckpt = tmp_path / "ckpt"
    model = _linear()
    with pytest.raises(Killed):
        train_loop(model, _objective(model), SCHEDULE, "k", "cpu", checkpoint=ckpt, progress=kill_at_4)
    resumed_model = _linear()  # a fresh process: the checkpoint holds step 3, mid-epoch
    resumed = train_loop(resumed_model, _objective(resumed_model), SCHEDULE, "k", "cpu", checkpoint=ckpt, resume=True)
    straight_model = _linear()
    straight = train_loop(straight_model, _objective(straight_model), SCHEDULE, "k", "cpu")
    assert resumed.resumed_from == 3 and resumed.step == 5
    assert resumed.losses == pytest.approx(straight.losses, abs=1e-6) and resumed.pairs_seen == straight.pairs_seen
    assert torch.allclose(resumed_model.weight, straight_model.weight, atol=1e-6)


def test_curve_points_are_evenly_spaced_and_include_the_last_step():
    model = _linear()
    calls: list[bool] = []
    trained = train_loop(model, _objective(model), SCHEDULE, "k", "cpu",
                         curve=lambda: calls.append(model.training) or {"bias": float(model.bias)}, curve_points=2)
    assert [p["step"] for p in trained.curve] == [2, 5] and [p["epochs"] for p in trained.curve] == [1.0, 2.5]
    assert calls == [True, True] and not model.training  # measured as it is; the caller's curve sets eval if needed


def test_an_adversary_adds_the_loss_at_fgm_moved_weights_and_restores_them():
    """FGM on the weight matrix (as on a student's word embeddings): each micro-batch's gradient is the clean
    one plus the one at weight + epsilon x grad / |grad| (the gradient so far), as a hand-written FGM loop."""
    from training.adversarial import FGM

    epsilon = 0.5
    model = _linear()
    fgm = FGM(model.weight, epsilon)
    objective = Objective(_epoch, lambda idx, _step: model(X[idx])[:, 0],
                          lambda idx, out: torch.nn.functional.mse_loss(out, Y[idx]), fgm.perturbed)
    trained = train_loop(model, objective, SCHEDULE, key="k", device="cpu")

    reference = _linear()

    def moved(idx: list[int]) -> torch.Tensor:  # the loss at the moved weights; its gradient lands on the weights
        grad = reference.weight.grad
        delta = (epsilon * grad / grad.norm()).detach()
        out = torch.nn.functional.linear(X[idx], reference.weight + delta, reference.bias)[:, 0]
        return torch.nn.functional.mse_loss(out, Y[idx])

    steps = [step for e in range(3) for step in _epoch(e)][:5]
    reference_training(reference.parameters(), [
        [f for idx in step for f in (lambda idx=idx: torch.nn.functional.mse_loss(reference(X[idx])[:, 0], Y[idx]),
                                     lambda idx=idx: moved(idx))]
        for step in steps], learning_rate=0.1, warmup=2, total=5, grad_accum=2)
    plain = _linear()
    untouched = train_loop(plain, _objective(plain), SCHEDULE, key="k", device="cpu")
    assert torch.allclose(model.weight, reference.weight, atol=1e-6)
    assert torch.allclose(model.bias, reference.bias, atol=1e-6)
    assert not torch.allclose(model.weight, plain.weight, atol=1e-4)  # the adversarial term changed training
    assert trained.losses[0] == pytest.approx(untouched.losses[0])  # the recorded loss is the clean one


def test_fgm_moves_along_the_gradient_by_epsilon_and_puts_the_weights_back_even_on_errors():
    from training.adversarial import FGM

    weight = torch.nn.Parameter(torch.randn(4, 3, generator=torch.Generator().manual_seed(0)))
    before = weight.detach().clone()
    fgm = FGM(weight, 0.25)
    with fgm.perturbed() as moved:  # no gradient yet: nothing to follow
        assert not moved and torch.equal(weight, before)
    weight.grad = torch.zeros_like(weight)
    with fgm.perturbed() as moved:  # a zero gradient: no direction
        assert not moved and torch.equal(weight, before)
    weight.grad = torch.arange(12.0).reshape(4, 3)
    with pytest.raises(RuntimeError), fgm.perturbed() as moved:
        assert moved
        delta = weight.detach() - before
        assert delta.norm().item() == pytest.approx(0.25)
        assert torch.allclose(delta / delta.norm(), weight.grad / weight.grad.norm(), atol=1e-6)
        raise RuntimeError("the adversarial pass failed")
    assert torch.equal(weight, before)  # bit for bit
