"""What the behaviour teacher reads: titles users chose for a query and its nearest logged queries.

ProRBP's idea: a teacher judges (query, product) better when it also sees what
users engaged with for that query and for similar ones. Here the query side of
the pair carries it, in one fixed template::

    {query} | users chose: {title}; {title} | for similar searches: {title}; {title}

The product text stays the second segment, untouched; when the pair would
pass ``template.max_tokens``, the behaviour text is cut first (whole words),
and dropped when too little of it fits. A query without behaviour reads the
plain input. The student never sees any of it: it distils the teacher's
scores of plain pairs.

Leakage guard: behaviour comes only from training-split queries (anything
else in the judgment list is dropped and counted), neighbours come from an
index of training queries only (:mod:`training.neighbours`), and a validation
or test query always reads the plain input, whatever the context holds.
"""
from __future__ import annotations

import bisect
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from reranker_core.files import write_json_atomic
from reranker_core.template import ProductTemplate

from .datasets import normalize_query, split_of
from .neighbours import QueryIndex

OWN_MARK = " | users chose: "
NEIGHBOUR_MARK = " | for similar searches: "
MIN_BEHAVIOUR_PARTS = 8  # the mark (4-5 words) and at least ~3 words of titles, else the plain input
CONTEXT_FILE = "behaviour.json"


@dataclass
class BehaviourContext:
    """Per training query (normalized) the titles users chose, best first; and the implicit soft labels.

    ``implicit`` maps a training query to {product text: COEC / (1 + COEC)}, the
    implicit-judgment view; ``dropped_held_out`` counts judgment-list queries of
    other splits that were left out.
    """

    engaged: dict[str, list[str]]
    fractions: tuple[float, float, float]
    salt: str
    top_n: int = 3
    neighbours: int = 3
    min_similarity: float = 0.2
    implicit: dict[str, dict[str, float]] = field(default_factory=dict)
    dropped_held_out: int = 0

    def __post_init__(self) -> None:
        self.fractions = tuple(self.fractions)  # type: ignore[assignment]
        for name, queries in (("engaged", self.engaged), ("implicit", self.implicit)):
            held_out = [q for q in queries if not self.is_training(q)]
            if held_out:
                raise ValueError(f"behaviour context {name} holds held-out query {held_out[0]!r}")

    def is_training(self, query: str) -> bool:
        return split_of(normalize_query(query), self.fractions, self.salt) == "train"

    @cached_property
    def index(self) -> QueryIndex:
        """The nearest-query index over the logged training queries."""
        return QueryIndex(self.engaged, self.fractions, self.salt)

    def behaviour(self, query: str) -> str:
        """The behaviour text appended to ``query`` ("" for a held-out query or one with no behaviour)."""
        key = normalize_query(query)
        if not self.is_training(key):
            return ""
        own = self.engaged.get(key, [])[:self.top_n]
        seen = set(own)
        near: list[str] = []
        for other, _ in self.index.nearest(key, self.neighbours, self.min_similarity):
            for title in self.engaged[other][:self.top_n]:
                if title not in seen:
                    seen.add(title)
                    near.append(title)
        text = f"{OWN_MARK}{'; '.join(own)}" if own else ""
        return text + (f"{NEIGHBOUR_MARK}{'; '.join(near)}" if near else "")

    def save(self, path: Path) -> None:
        write_json_atomic(Path(path), {"engaged": self.engaged, "fractions": list(self.fractions), "salt": self.salt,
                                       "top_n": self.top_n, "neighbours": self.neighbours,
                                       "min_similarity": self.min_similarity, "implicit": self.implicit,
                                       "dropped_held_out": self.dropped_held_out})

    @classmethod
    def load(cls, path: Path) -> BehaviourContext:
        return cls(**json.loads(Path(path).read_text(encoding="utf-8")))

    def summary(self) -> dict[str, Any]:
        """Counts for the teacher's meta and the console."""
        return {"queries_with_behaviour": len(self.engaged), "implicit_queries": len(self.implicit),
                "implicit_pairs": sum(map(len, self.implicit.values())), "dropped_held_out": self.dropped_held_out,
                "top_n": self.top_n, "neighbours": self.neighbours, "neighbours_by": "tf-idf over query text"}


def build_context(labels: Mapping[tuple[str, str], float], products: Mapping[str, Mapping[str, Any]],
                  template: ProductTemplate, fractions: tuple[float, float, float], salt: str, top_n: int = 3,
                  neighbours: int = 3) -> BehaviourContext:
    """The context from implicit soft labels ((normalized query, product id) -> label in [0, 1]).

    A pair with a label above 0 was clicked (COEC > 0 needs a click). Queries of
    the validation and test splits are dropped here too, whatever list was passed.
    """
    engaged: dict[str, list[tuple[float, str]]] = {}
    implicit: dict[str, dict[str, float]] = {}
    held_out: set[str] = set()
    for (query, product_id), label in sorted(labels.items()):
        query = normalize_query(query)
        if split_of(query, fractions, salt) != "train":
            held_out.add(query)
            continue
        product = products.get(product_id)
        if product is None:
            continue
        implicit.setdefault(query, {})[template.render(product)] = float(label)
        if label > 0:
            title = " ".join(str(product.get("title") or template.render(product)).split())
            engaged.setdefault(query, []).append((-float(label), title))
    ranked = {q: list(dict.fromkeys(t for _, t in sorted(rows))) for q, rows in engaged.items()}
    return BehaviourContext(ranked, fractions, salt, top_n, neighbours, implicit=implicit,
                            dropped_held_out=len(held_out))


def with_behaviour(tokenizer, query: str, behaviour: str, text: str, max_tokens: int,
                   counts: Sequence[int] | None = None) -> str:
    """``query`` plus as many whole words of ``behaviour`` as keep the (query, text) pair within ``max_tokens``.

    ``counts`` (:func:`prefix_counts`, cached per query by :class:`BehaviourInputs`) guesses the cut from word
    pieces added up, checked by two real encodings; the binary search runs only where the guess is off. Labeling
    the main job's pool cuts ~214k pairs, so the ~7 encodings per pair of the search alone took minutes."""
    if not behaviour:
        return query

    def fits(words: int) -> bool:
        q = query + " ".join(parts[:words]) if words else query
        return len(tokenizer(q, text, truncation=False)["input_ids"]) <= max_tokens

    parts = behaviour.split(" ")  # behaviour starts with " | ": the first part is ""
    counts = prefix_counts(tokenizer, query, behaviour) if counts is None else counts
    room = max_tokens - tokenizer.num_special_tokens_to_add(pair=True) - len(
        tokenizer(text, add_special_tokens=False)["input_ids"])
    guess = bisect.bisect_right(counts, room) - 1  # most words whose pieces, added up, fit
    if guess >= 0 and fits(guess) and (guess == len(parts) or not fits(guess + 1)):
        low = guess
    elif fits(len(parts)):
        low = len(parts)
    else:
        low, high = 0, len(parts) - 1  # largest prefix that fits
        while low < high:
            mid = (low + high + 1) // 2
            low, high = (mid, high) if fits(mid) else (low, mid - 1)
    if low == len(parts):
        return query + behaviour
    return query + " ".join(parts[:low]) if low >= MIN_BEHAVIOUR_PARTS else query


def prefix_counts(tokenizer, query: str, behaviour: str) -> list[int]:
    """Word pieces of ``query`` plus the first k words of ``behaviour``, for k = 0..all (non-decreasing)."""
    parts = behaviour.split(" ")
    pieces = tokenizer(parts, add_special_tokens=False)["input_ids"]
    total = len(tokenizer(query, add_special_tokens=False)["input_ids"])
    out = [total]
    for ids in pieces:
        total += len(ids)
        out.append(total)
    return out


class BehaviourInputs:
    """Turns plain (query, text) pairs into the behaviour teacher's inputs; held-out queries stay plain."""

    def __init__(self, context: BehaviourContext, tokenizer, max_tokens: int) -> None:
        self.context, self.tokenizer, self.max_tokens = context, tokenizer, max_tokens
        self._behaviour: dict[str, tuple[str, list[int]]] = {}  # query -> (behaviour, prefix_counts)

    def __call__(self, pairs: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
        out = []
        for query, text in pairs:
            if query not in self._behaviour:
                found = self.context.behaviour(query)
                self._behaviour[query] = found, prefix_counts(self.tokenizer, query, found) if found else []
            behaviour, counts = self._behaviour[query]
            out.append((with_behaviour(self.tokenizer, query, behaviour, text, self.max_tokens, counts), text))
        return out


class BehaviourScorer:
    """A cross-encoder trained on behaviour inputs, scoring plain pairs (it adds the behaviour itself)."""

    def __init__(self, scorer, inputs: BehaviourInputs, name: str = "behaviour") -> None:
        self.scorer, self.inputs, self.name = scorer, inputs, name

    def score(self, pairs: Sequence[tuple[str, str]], batch_size: int = 64, progress=None) -> list[float]:
        return self.scorer.score(self.inputs(pairs), batch_size, progress)


class ImplicitView:
    """The implicit-judgment view: a training pair's soft implicit label, ``default`` (the mean) elsewhere,
    so a query or pair without judgments adds nothing to the sum; held-out queries never have any."""

    def __init__(self, context: BehaviourContext, default: float, name: str = "implicit") -> None:
        self.context, self.default, self.name = context, default, name

    def score(self, pairs: Sequence[tuple[str, str]], batch_size: int = 64, progress=None) -> list[float]:
        out = []
        for query, text in pairs:
            key = normalize_query(query)
            found = self.context.implicit.get(key, {}).get(text) if self.context.is_training(key) else None
            out.append(self.default if found is None else found)
        if progress:
            progress(len(pairs), len(pairs))
        return out
