"""Score (query, document) pairs with an exported zip exactly as ML Commons does.

ML Commons tokenizes each pair with the zip's ``tokenizer.json`` and runs the
ONNX graph on it, returning the raw logit. Doing the same here lets tests and
evaluation compare cluster scores with local ones, and lets users evaluate a zip
before deploying it.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from reranker_core.model_zip import TOKENIZER_FILE, ModelArtifact, read_member, validate_zip

Progress = Callable[[int, int], None]


class OnnxZipScorer:
    """Raw-logit scorer over a validated model zip (CPU onnxruntime)."""

    def __init__(self, zip_path: Path, threads: int | None = None) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.artifact: ModelArtifact = validate_zip(zip_path)
        self.tokenizer = Tokenizer.from_str(read_member(zip_path, TOKENIZER_FILE).decode("utf-8"))
        self.tokenizer.no_padding()
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(read_member(zip_path, self.artifact.onnx_name), options,
                                            providers=["CPUExecutionProvider"])

    def score(self, query: str, documents: Sequence[str], batch_size: int = 32) -> list[float]:
        """One logit per document, each pair encoded on its own as the cluster does."""
        scores: list[float] = []
        for start in range(0, len(documents), batch_size):
            batch = [self.tokenizer.encode(query, doc) for doc in documents[start:start + batch_size]]
            width = max(len(e.ids) for e in batch)
            feed = {name: np.zeros((len(batch), width), dtype=np.int64)
                    for name in ("input_ids", "attention_mask", "token_type_ids")}
            for row, enc in enumerate(batch):
                n = len(enc.ids)
                feed["input_ids"][row, :n] = enc.ids
                feed["attention_mask"][row, :n] = enc.attention_mask
                feed["token_type_ids"][row, :n] = enc.type_ids
            (logits,) = self.session.run(None, feed)
            scores.extend(float(x) for x in logits[:, 0])
        return scores


class ZipScorer:
    """An exported model zip behind the pair-scoring interface every scorer shares (``name``, ``score(pairs)``)."""

    def __init__(self, path: Path) -> None:
        self.name = Path(path).name
        self._scorer = OnnxZipScorer(path)

    def score(self, pairs: Sequence[tuple[str, str]], batch_size: int = 32,
              progress: Progress | None = None) -> list[float]:
        by_query: dict[str, list[int]] = {}
        for i, (q, _) in enumerate(pairs):
            by_query.setdefault(q, []).append(i)
        out = [0.0] * len(pairs)
        done = 0
        for q, idx in by_query.items():
            for i, s in zip(idx, self._scorer.score(q, [pairs[i][1] for i in idx], batch_size)):
                out[i] = s
            done += len(idx)
            if progress:
                progress(done, len(pairs))
        return out
