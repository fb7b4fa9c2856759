"""Embedding-space adversarial training (FGM, Miyato et al. 2017) for the student's robustness (ei-SRC).

A typo changes which word pieces a query becomes; no perturbation of the
input text can cover every spelling. FGM instead moves the word-embedding
matrix a small step ``epsilon`` along the gradient of the loss (the direction
that hurts ranking most, normalised over the matrix), takes the same batch's
loss there and adds its gradient to the clean one. The optimizer step then
follows both: the student learns to rank well at the worst nearby inputs,
which often also helps clean quality (the clean bar of issue 26).
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


class FGM:
    """``perturbed()``: the embedding matrix moved by ``epsilon`` along its current gradient, restored exactly
    on leaving (also when the adversarial pass raises)."""

    def __init__(self, embeddings: torch.nn.Parameter, epsilon: float) -> None:
        if epsilon <= 0:
            raise ValueError("FGM needs epsilon > 0")
        self.embeddings, self.epsilon = embeddings, epsilon

    @contextmanager
    def perturbed(self) -> Iterator[bool]:
        """Yields whether the matrix was moved (no usable gradient yet, e.g. a zero loss: it is not)."""
        grad = self.embeddings.grad
        norm = grad.norm() if grad is not None else None
        if norm is None or not torch.isfinite(norm) or norm == 0:
            yield False
            return
        saved = self.embeddings.detach().clone()
        with torch.no_grad():
            self.embeddings.add_(grad, alpha=self.epsilon / norm.item())
        try:
            yield True
        finally:
            with torch.no_grad():
                self.embeddings.copy_(saved)
