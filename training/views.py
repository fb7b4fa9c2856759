"""Frozen views a teacher can add to its cross-encoder: a bi-encoder's cosine similarity.

A view scores (query, product) pairs without training. The ensemble teacher
adds views to its fine-tuned cross-encoder with weights chosen on the
validation split, so a view that does not help gets weight 0.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from .models import ModelError, resolve_model

Progress = Callable[[int, int], None]


class BiEncoderView:
    """Cosine similarity of mean-pooled sentence embeddings (sentence-transformers style), texts encoded once."""

    def __init__(self, spec: str, max_tokens: int = 128, name: str | None = None) -> None:
        from transformers import AutoModel, AutoTokenizer

        source = resolve_model(spec)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(source)
            self.model = AutoModel.from_pretrained(source, dtype=torch.float32).eval()
        except (OSError, ValueError) as err:
            raise ModelError(f"cannot load bi-encoder {spec!r} ({str(err).splitlines()[0]})",
                             "list a sentence-transformers folder or pkg: spec in teacher.views") from err
        self.spec, self.max_tokens, self.name = spec, max_tokens, name or f"bi-encoder {spec}"

    @torch.no_grad()
    def embed(self, texts: Sequence[str], batch_size: int = 128) -> torch.Tensor:
        """[len(texts), dim] unit vectors; texts sorted by length so batches carry little padding."""
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = torch.empty(len(texts), self.model.config.hidden_size)
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            enc = self.tokenizer([texts[i] for i in idx], truncation=True, max_length=self.max_tokens,
                                 padding=True, return_tensors="pt")
            hidden = self.model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            out[torch.tensor(idx)] = torch.nn.functional.normalize(pooled, dim=-1)
        return out

    def score(self, pairs: Sequence[tuple[str, str]], batch_size: int = 128,
              progress: Progress | None = None) -> list[float]:
        """Cosine similarity per pair; each distinct query and text is embedded once."""
        queries = sorted({q for q, _ in pairs})
        texts = sorted({t for _, t in pairs})
        q_index = {q: i for i, q in enumerate(queries)}
        t_index = {t: i for i, t in enumerate(texts)}
        q_emb = self.embed(queries, batch_size)
        if progress:
            progress(len(queries), len(queries) + len(texts))
        t_emb = self.embed(texts, batch_size)
        rows = torch.tensor([q_index[q] for q, _ in pairs], dtype=torch.long)
        cols = torch.tensor([t_index[t] for _, t in pairs], dtype=torch.long)
        if progress:
            progress(len(queries) + len(texts), len(queries) + len(texts))
        return (q_emb[rows] * t_emb[cols]).sum(-1).tolist()
