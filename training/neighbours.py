"""Nearest logged queries by query text: a tiny in-memory TF-IDF index (numpy), training queries only.

The behaviour teacher reads what users chose for a query's nearest logged
queries. The bi-encoder (:class:`training.views.BiEncoderView`) could embed
them too, but it costs a model load and a pass over every query on a 2-core
CPU; word unigrams plus in-word character trigrams, TF-IDF weighted and
compared by cosine, find "cordless drills" for "cordless drill" for free.
``rank_bm25`` is not installed, so no BM25 package is pulled in for this.

The index is built from training-split queries only and refuses any other
(the leakage guard), so a lookup can never return a validation or test query.
"""
from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable

import numpy as np

from .datasets import normalize_query, split_of


def features(query: str) -> Counter[str]:
    """Words and the character trigrams inside each word (``#dr``, ``dri``, ..., ``ll#``)."""
    found: Counter[str] = Counter()
    for word in normalize_query(query).split():
        found[f"w:{word}"] += 1
        padded = f"#{word}#"
        for i in range(len(padded) - 2):
            found[padded[i:i + 3]] += 1
    return found


class QueryIndex:
    """Cosine over TF-IDF vectors of training-split queries (normalized), for :meth:`nearest` lookups."""

    def __init__(self, queries: Iterable[str], fractions: tuple[float, float, float], salt: str) -> None:
        keys = sorted({normalize_query(q) for q in queries})
        held_out = [q for q in keys if split_of(q, fractions, salt) != "train"]
        if held_out:
            raise ValueError(f"query index got {len(held_out)} held-out queries (e.g. {held_out[0]!r}); "
                             "only training-split queries may be neighbours")
        self.queries: list[str] = keys
        self.fractions, self.salt = fractions, salt
        counted = [features(q) for q in keys]
        df: Counter[str] = Counter(f for c in counted for f in c)
        self.idf = {f: math.log((1 + len(keys)) / (1 + n)) + 1.0 for f, n in df.items()}
        # sparse: feature -> (query rows, weights), so memory grows with the queries' features, not rows x vocab
        postings: dict[str, tuple[list[int], list[float]]] = {}
        for row, c in enumerate(counted):
            for f, w in self._weights(c).items():
                postings.setdefault(f, ([], []))[0].append(row)
                postings[f][1].append(w)
        self.postings = {f: (np.array(r), np.array(w)) for f, (r, w) in postings.items()}

    def _weights(self, counted: Counter[str]) -> dict[str, float]:
        """Unit-length TF-IDF weights (sublinear tf) of the features some indexed query has; the length counts
        every feature, so a query with words no indexed query has is less similar, as cosine says."""
        unseen = math.log(1 + len(self.queries)) + 1.0
        raw = {f: (1 + math.log(n)) * self.idf.get(f, unseen) for f, n in counted.items()}
        norm = math.sqrt(sum(w * w for w in raw.values()))
        return {f: w / norm for f, w in raw.items() if f in self.idf} if norm else {}

    def nearest(self, query: str, k: int, min_similarity: float = 0.0) -> list[tuple[str, float]]:
        """Up to ``k`` indexed queries most similar to ``query``, best first, never ``query`` itself.

        A held-out ``query`` gets no neighbours: it must read no behaviour at all.
        """
        key = normalize_query(query)
        if k <= 0 or not self.queries or split_of(key, self.fractions, self.salt) != "train":
            return []
        sims = np.zeros(len(self.queries))
        for f, w in self._weights(features(key)).items():
            rows, weights = self.postings[f]
            sims[rows] += w * weights
        order = np.argsort(-sims, kind="stable")
        out = []
        for i in order:
            if self.queries[i] == key:
                continue
            if sims[i] <= min_similarity or len(out) == k:
                break
            out.append((self.queries[i], float(sims[i])))
        return out

