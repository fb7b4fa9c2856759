"""Implicit judgments from UBI events: CTR and COEC per (query, product), training queries only.

COEC (clicks over expected clicks) is the click model Search Relevance
Workbench uses for implicit judgments: the click-through rate at each rank is
computed over all queries (clicks / impressions at that ``position.ordinal``,
ranks below ``max_rank``), and a pair's rating is its clicks divided by the
clicks an average result would have got at the ranks where it was shown. A
COEC of 1 is an average result for its rank; 2 draws twice the clicks. Unlike
SRW, which multiplies all of a pair's impressions by the CTR of one rank, the
expected clicks here sum the CTR of each impression's own rank; the two agree
whenever a product is always shown at the same rank (as on a fixed BM25 page).
A pair with no expected clicks rates 0, as in SRW.

Leakage: an event whose query falls in the validation or test split (by the
same hash as the judged data) is dropped before anything is counted, rank CTRs
included, so no held-out query shapes a label.
"""
from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reranker_core.files import write_json_atomic
from training.datasets import DataError, Judgment, normalize_query, split_of
from training.ubievents import JoinedEvent

CLICK_ACTIONS = ("click",)
IMPRESSION_ACTION = "impression"
DEFAULT_MAX_RANK = 20  # SRW's default maxRank


@dataclass(frozen=True)
class ImplicitJudgment:
    """Behaviour statistics of one (query, product) pair; ``query`` is normalized, ``raw_query`` as first logged."""

    query: str
    raw_query: str
    product_id: str
    impressions: int
    clicks: int
    expected_clicks: float
    ctr: float
    coec: float

    @property
    def soft_label(self) -> float:
        """COEC squashed into [0, 1): 0.5 for an average result at its rank, so it can sit beside human labels."""
        return self.coec / (1.0 + self.coec)


@dataclass
class ImplicitResult:
    """The judgments, the rank CTRs they were normalized by, and what was left out and why."""

    judgments: list[ImplicitJudgment]
    rank_ctr: dict[int, float]
    events_used: int = 0
    excluded_eval_events: int = 0
    excluded_eval_queries: int = 0
    ignored_events: Counter[str] = field(default_factory=Counter)

    def summary(self) -> dict[str, Any]:
        """What a sidecar records next to an exported judgment list."""
        return {"pairs": len(self.judgments), "events_used": self.events_used,
                "excluded_eval_events": self.excluded_eval_events,
                "excluded_eval_queries": self.excluded_eval_queries,
                "ignored_events": dict(sorted(self.ignored_events.items())),
                "rank_ctr": [round(c, 6) for _, c in sorted(self.rank_ctr.items())]}  # index = position


def training_events(events: Iterable[JoinedEvent], fractions: tuple[float, float, float], salt: str,
                    result: ImplicitResult) -> Iterable[JoinedEvent]:
    """Only events of training-split queries; the others are counted in ``result`` (the leakage guard)."""
    held_out: set[str] = set()
    for joined in events:
        key = normalize_query(joined.query)
        if split_of(key, fractions, salt) != "train":
            result.excluded_eval_events += 1
            if key not in held_out:
                held_out.add(key)
                result.excluded_eval_queries += 1
            continue
        yield joined


def implicit_judgments(events: Iterable[JoinedEvent], fractions: tuple[float, float, float], salt: str,
                       max_rank: int = DEFAULT_MAX_RANK, click_actions: Sequence[str] = CLICK_ACTIONS
                       ) -> ImplicitResult:
    """CTR and COEC for every (training query, product) pair with an impression or a click below ``max_rank``."""
    if max_rank < 1:
        raise ValueError(f"max_rank must be >= 1, got {max_rank}")
    result = ImplicitResult([], {})
    clicks_at: Counter[int] = Counter()
    shown_at: Counter[int] = Counter()
    pair_clicks: Counter[tuple[str, str]] = Counter()
    pair_shown: dict[tuple[str, str], Counter[int]] = defaultdict(Counter)
    raw: dict[str, str] = {}
    for joined in training_events(events, fractions, salt, result):
        event = joined.event
        is_click = event.action_name in click_actions
        if not is_click and event.action_name != IMPRESSION_ACTION:
            result.ignored_events[f"action {event.action_name}"] += 1
            continue
        if event.object_id is None or event.position is None:
            result.ignored_events["no object_id or position"] += 1
            continue
        if event.position >= max_rank:
            result.ignored_events[f"position >= max_rank {max_rank}"] += 1
            continue
        key = normalize_query(joined.query)
        raw.setdefault(key, joined.query)
        pair = (key, event.object_id)
        result.events_used += 1
        if is_click:
            clicks_at[event.position] += 1
            pair_clicks[pair] += 1
            pair_shown.setdefault(pair, Counter())
        else:
            shown_at[event.position] += 1
            pair_shown[pair][event.position] += 1
    result.rank_ctr = {r: (clicks_at[r] / shown_at[r] if shown_at[r] else 0.0) for r in range(max_rank)}
    for (query, product_id), ranks in sorted(pair_shown.items()):
        impressions = sum(ranks.values())
        expected = sum(result.rank_ctr[r] * n for r, n in ranks.items())
        clicks = pair_clicks[(query, product_id)]
        result.judgments.append(ImplicitJudgment(
            query, raw[query], product_id, impressions, clicks, expected,
            ctr=clicks / impressions if impressions else 0.0,
            coec=clicks / expected if expected > 0 else 0.0))
    return result


def engaged_products(judgments: Iterable[ImplicitJudgment], min_clicks: int = 1) -> dict[str, dict[str, float]]:
    """Per training query (normalized), the products users clicked, with their COEC: what a behaviour-aware
    teacher reads (only training queries ever reach ``implicit_judgments``)."""
    engaged: dict[str, dict[str, float]] = {}
    for j in judgments:
        if j.clicks >= min_clicks:
            engaged.setdefault(j.query, {})[j.product_id] = j.coec
    return engaged


def blend_soft_labels(judgments: Sequence[Judgment], implicit: Mapping[tuple[str, str], float],
                      weight: float) -> list[Judgment]:
    """Human judgments whose soft label moves ``weight`` of the way to the implicit label of the same pair.

    ``implicit`` maps (normalized query, product id) to a soft label in [0, 1];
    pairs without one, and ``weight`` 0, keep the human label unchanged.
    """
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"weight must be in [0, 1], got {weight}")
    if weight == 0.0:
        return list(judgments)
    out = []
    for j in judgments:
        label = implicit.get((normalize_query(j.query), j.product_id))
        if label is None:
            out.append(j)
        else:
            out.append(Judgment(j.query, j.product_id, j.grade, (1.0 - weight) * j.soft_label + weight * label))
    return out


METRICS = ("coec", "ctr")


def judgment_list(result: ImplicitResult, name: str, metric: str = "coec", simulated: bool = False
                  ) -> dict[str, Any]:
    """The judgments as a Search Relevance Workbench import body (``PUT _plugins/_search_relevance/judgments``).

    Ratings are the chosen metric, 3 decimals, as SRW writes its own COEC
    ratings; a list built on simulated clicks says so in its name and description.
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    by_query: dict[str, list[dict[str, str]]] = {}
    for j in result.judgments:
        by_query.setdefault(j.raw_query, []).append({"docId": j.product_id, "rating": f"{getattr(j, metric):.3f}"})
    label = "SIMULATED clicks: " if simulated else ""
    return {"name": f"{'simulated-' if simulated else ''}{name}",
            "description": f"{label}implicit judgments ({metric.upper()}, rank-normalised as in Search Relevance "
                           f"Workbench) of {len(by_query)} training queries; see the sidecar for provenance",
            "type": "IMPORT_JUDGMENT",
            "judgmentRatings": [{"query": q, "ratings": r} for q, r in by_query.items()]}


def sidecar_path(path: Path) -> Path:
    """``judgments.json`` -> ``judgments.sidecar.json``: where an export's provenance goes."""
    return path.with_name(path.stem + ".sidecar.json")


def export_judgments(path: Path, result: ImplicitResult, name: str, metric: str,
                     provenance: Mapping[str, Any]) -> tuple[Path, Path]:
    """Write the SRW judgment list and its sidecar (counts, rank CTRs, provenance), each atomically.

    The sidecar is written first: a judgment list is never on disk without the
    record of where it came from (simulated or not, with what parameters).
    """
    simulated = bool(provenance.get("simulated"))
    side = sidecar_path(Path(path))
    write_json_atomic(side, {"metric": metric, "simulated": simulated, "judgment_list": str(path),
                             **result.summary(), **provenance})
    write_json_atomic(Path(path), judgment_list(result, name, metric, simulated))
    return Path(path), side


def read_implicit_labels(path: Path) -> dict[tuple[str, str], float]:
    """(normalized query, product id) -> soft label from an exported judgment list (COEC squashed to [0, 1)).

    A CTR list is taken as it is (already in [0, 1]); what the file is comes from its sidecar.
    """
    path = Path(path)
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
        metric = json.loads(sidecar_path(path).read_text(encoding="utf-8")).get("metric", "coec")
        labels: dict[tuple[str, str], float] = {}
        for entry in body["judgmentRatings"]:
            for rating in entry["ratings"]:
                value = float(rating["rating"])
                labels[(normalize_query(entry["query"]), str(rating["docId"]))] = (
                    value / (1.0 + value) if metric == "coec" else value)
    except FileNotFoundError as err:
        raise DataError(f"implicit judgment list {err.filename} does not exist",
                        "run `reranker implicit-judgments` first, or fix teacher.implicit_judgments") from None
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise DataError(f"{path} is not a judgment list written by `reranker implicit-judgments` ({err})",
                        "re-export it with `reranker implicit-judgments`") from None
    return labels


def with_implicit_labels(judgments: Sequence[Judgment], weight: float, path: str | None
                         ) -> tuple[list[Judgment], int, bool]:
    """The teacher's training judgments with ``teacher.implicit_weight`` of the implicit labels blended in.

    Returns the judgments, how many had an implicit label, and whether the list
    came from simulated clicks (its sidecar says). Only pairs of the given
    (training) judgments are touched, so a list exported under another split
    cannot bring a held-out query into training.
    """
    if weight == 0 or not path:
        return list(judgments), 0, False
    labels = read_implicit_labels(Path(path))
    simulated = bool(json.loads(sidecar_path(Path(path)).read_text(encoding="utf-8")).get("simulated"))
    matched = sum(1 for j in judgments if (normalize_query(j.query), j.product_id) in labels)
    return blend_soft_labels(judgments, labels, weight), matched, simulated
