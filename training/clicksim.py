"""Simulated search sessions: a position-based click model over result pages, written as UBI 1.x docs.

Without real users, behaviour data can still be made to test everything
downstream of it (the events reader, COEC, the judgment export), as long as
it is honest about being made. The position-based model (PBM) says a result
at rank r (0-based) is clicked with probability ``examination(r) x
attractiveness``: ``examination(r) = (1 / (r + 1)) ** eta`` and the
attractiveness of a human-judged pair grows linearly with its soft label
between ``attractiveness_min`` and ``attractiveness_max``; an unjudged pair
gets ``unjudged_attractiveness``. The cascade model (``kind="cascade"``)
scans top-down instead: each examined result is clicked with its
attractiveness and the first click ends the session (at most one click; eta
is unused). Every parameter and the seed go into
:meth:`ClickModel.describe`, which is written next to every output, and every
doc carries ``application: SIMULATED_APPLICATION`` so no one mistakes it for
real behaviour.
"""
from __future__ import annotations

import hashlib
import random
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

#: The ``application`` of every simulated ubi_queries / ubi_events doc: what marks data as simulated.
SIMULATED_APPLICATION = "reranker-simulated"
OBJECT_ID_FIELD = "product_id"
CLICK_MODELS = ("pbm", "cascade")
START = datetime(2025, 1, 1, tzinfo=timezone.utc)


@dataclass(frozen=True)
class ClickModel:
    """Position-based click model; all parameters are stated and recorded with the output."""

    kind: str = "pbm"                      # pbm: position-based | cascade: top-down, stop at the first click
    eta: float = 1.0                       # pbm: examination decay (1 / (rank + 1)) ** eta
    attractiveness_min: float = 0.05       # a judged pair with soft label 0
    attractiveness_max: float = 0.95       # a judged pair with soft label 1
    unjudged_attractiveness: float = 0.1   # a pair no human graded
    noise: float = 0.0                     # share of attractiveness that ignores relevance: 1 = position only

    def __post_init__(self) -> None:
        probabilities = (self.attractiveness_min, self.attractiveness_max, self.unjudged_attractiveness)
        if self.kind not in CLICK_MODELS:
            raise ValueError(f"click model {self.kind!r} is unknown; use one of {', '.join(CLICK_MODELS)}")
        if self.eta < 0 or not all(0.0 <= p <= 1.0 for p in (*probabilities, self.noise)):
            raise ValueError("eta must be >= 0 and the attractiveness values and noise in [0, 1]")

    def examination(self, rank: int) -> float:
        """Probability that a user looks at rank ``rank`` (0-based)."""
        return (1.0 / (rank + 1)) ** self.eta

    def attractiveness(self, soft_label: float | None) -> float:
        """Probability of a click once examined: from the human soft label, or the stated unjudged default; with
        ``noise`` that share is the same for every result ((min + max) / 2), so clicks say less about relevance
        (the behaviour study's sweep: how right must behaviour be before it helps)."""
        if soft_label is None:
            relevant = self.unjudged_attractiveness
        else:
            relevant = self.attractiveness_min + (self.attractiveness_max - self.attractiveness_min) * soft_label
        return (1 - self.noise) * relevant + self.noise * (self.attractiveness_min + self.attractiveness_max) / 2

    def click_probability(self, rank: int, soft_label: float | None) -> float:
        """PBM: the probability that the result at ``rank`` is clicked (a cascade also depends on the ranks above)."""
        return self.examination(rank) * self.attractiveness(soft_label)

    def clicks(self, rng: random.Random, attractiveness: Sequence[float]) -> list[bool]:
        """Which results of a page (their attractiveness, best first) one session clicks."""
        if self.kind == "pbm":
            return [rng.random() < self.examination(r) * a for r, a in enumerate(attractiveness)]
        clicked = [False] * len(attractiveness)
        for rank, a in enumerate(attractiveness):
            if rng.random() < a:
                clicked[rank] = True
                break
        return clicked

    def describe(self) -> dict[str, Any]:
        """The model's name and parameters, for sidecars."""
        examination = ("(1 / (rank + 1)) ** eta, rank 0-based" if self.kind == "pbm" else
                       "cascade: top-down until the first click (eta unused)")
        return {"model": "position-based (PBM)" if self.kind == "pbm" else "cascade (CM)",
                "examination": examination,
                "attractiveness": "(1 - noise) x (min + (max - min) x human soft label; unjudged pairs: "
                                  "unjudged_attractiveness) + noise x (min + max) / 2",
                **asdict(self)}


@dataclass(frozen=True)
class SimulatedLog:
    """The docs to write: one ``ubi_queries`` doc per session, its impression and click ``ubi_events``."""

    queries: list[dict[str, Any]]
    events: list[dict[str, Any]]
    sessions_per_query: dict[str, int]


def simulate(pages: Mapping[str, Sequence[str]], frequencies: Mapping[str, int],
             labels: Mapping[tuple[str, str], float], model: ClickModel, sessions: int, seed: int) -> SimulatedLog:
    """``sessions`` searches, each query drawn with probability proportional to its frequency, each showing its
    page (``pages[query]``: product ids, best first) and clicking by the model; ``labels`` maps (query, product id)
    to the human soft label. Same inputs and seed, same docs (ids and timestamps included)."""
    queries = sorted(q for q in pages if pages[q] and frequencies.get(q, 0) > 0)
    if not queries:
        return SimulatedLog([], [], {})
    rng = random.Random(seed)
    weights = [frequencies[q] for q in queries]
    query_docs: list[dict[str, Any]] = []
    event_docs: list[dict[str, Any]] = []
    counts: dict[str, int] = {}
    for session in range(sessions):
        query = rng.choices(queries, weights)[0]
        counts[query] = counts.get(query, 0) + 1
        query_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        client_id = f"sim-client-{rng.randrange(max(1, sessions // 3) + 1)}"
        when = START + timedelta(seconds=37 * session)
        page = list(pages[query])
        query_docs.append({
            "query_id": query_id, "user_query": query, "client_id": client_id, "application": SIMULATED_APPLICATION,
            "timestamp": _iso(when), "query_response_id": _digest(query_id, "response"),
            "query_response_hit_ids": page, "object_id_field": OBJECT_ID_FIELD,
            "query_attributes": {"simulated": "true", "seed": str(seed)}})
        session_id = _digest(query_id, "session")
        clicked = model.clicks(rng, [model.attractiveness(labels.get((query, pid))) for pid in page])
        for rank, product_id in enumerate(page):
            event_docs.append(_event("impression", query_id, session_id, client_id, product_id, rank,
                                     when + timedelta(milliseconds=100 + rank)))
            if clicked[rank]:
                event_docs.append(_event("click", query_id, session_id, client_id, product_id, rank,
                                         when + timedelta(seconds=2 + rank)))
    return SimulatedLog(query_docs, event_docs, counts)


def _event(action: str, query_id: str, session_id: str, client_id: str, product_id: str, rank: int,
           when: datetime) -> dict[str, Any]:
    """One UBI 1.x event; ``position.ordinal`` is 0-based, as Search Relevance Workbench's rank CTR table."""
    return {"application": SIMULATED_APPLICATION, "action_name": action, "query_id": query_id,
            "session_id": session_id, "client_id": client_id, "timestamp": _iso(when),
            "message_type": "INFO", "message": f"simulated {action}",
            "event_attributes": {"object": {"object_id": product_id, "object_id_field": OBJECT_ID_FIELD},
                                 "position": {"ordinal": rank}}}


def _iso(when: datetime) -> str:
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _digest(*parts: str) -> str:
    return hashlib.sha256(":".join(parts).encode()).hexdigest()[:16]
