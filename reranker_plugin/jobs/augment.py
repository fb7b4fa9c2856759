"""Augmented training pairs mined from live query logs, labeled by the teacher.

Logged queries are normalized and counted; evaluation queries (validation and
test splits) are dropped so evaluation stays held out; each remaining query is
run against the live index and its top-K hits become (query, product) pairs,
minus the pairs humans already judged. The teacher scores them in batches.

Work is cut into parts of ``queries_per_part`` queries in a fixed order (most
frequent first). Each part is one Parquet file written atomically, and a
manifest fingerprints the query list, so an interrupted run resumes at the first
missing part and never writes a pair twice. Memory is bounded by one part.

Who turns a part into its file is a :class:`PartLabeler`: :class:`LocalLabeler`
in this process, or ``ray_engine.RayLabeler`` on a Ray cluster. Both write the
same parts under the same manifest, so either resumes the other's run.
"""
from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from opensearchpy import OpenSearch

from reranker_core.config import AugmentConfig, DataConfig
from reranker_core.errors import ClusterError, ConfigError
from reranker_core.files import write_json_atomic
from reranker_core.template import ProductTemplate
from training.datasets import normalize_query, split_of
from training.pairs import write_pairs
from training.querylog import LogLine, MalformedReport, QueryCounter, iter_log_file

from ..connection import cluster_call
from .search import bm25_query, send

MANIFEST = "manifest.json"
Progress = Callable[[int, int], None]


class PairScorer:
    """What augmentation needs from a teacher (``training.teacher.Teacher`` fits)."""

    name: str

    def score_with_distribution(self, pairs: Sequence[tuple[str, str]], batch_size: int = 32,
                                progress: Progress | None = None) -> list[tuple[float, list[float]]]: ...


@dataclass(frozen=True)
class LoggedQuery:
    """A distinct query from the log: first-seen spelling and how often it occurred."""

    text: str
    normalized: str
    frequency: int


@dataclass(frozen=True)
class PartDone:
    """One part written: its pairs, the judged pairs it skipped, and the teacher's seconds on it."""

    number: int
    pairs: int
    skipped: int
    labeling_s: float


class PartLabeler(Protocol):
    """Turns parts of logged queries into Parquet files (retrieve, skip judged, label, write atomically)."""

    teacher_name: str

    def run(self, todo: Sequence[tuple[int, Sequence[LoggedQuery]]], out: Path) -> Iterator[PartDone]: ...


class LocalLabeler:
    """This process: one search at a time, the teacher loaded here."""

    def __init__(self, client: OpenSearch, index: str, cfg: AugmentConfig, template: ProductTemplate,
                 teacher: PairScorer, judged: set[tuple[str, str]] | frozenset = frozenset(),
                 score_batch_size: int = 32, progress: Progress | None = None) -> None:
        self.client, self.index, self.cfg, self.template = client, index, cfg, template
        self.teacher, self.judged, self.score_batch_size, self.progress = teacher, judged, score_batch_size, progress
        self.teacher_name = teacher.name

    def run(self, todo: Sequence[tuple[int, Sequence[LoggedQuery]]], out: Path) -> Iterator[PartDone]:
        estimate = sum(len(part) for _, part in todo) * min(self.cfg.top_k, self.cfg.per_query or self.cfg.top_k)
        pairs = 0
        for number, part in todo:
            rows, skipped = part_rows(self.client, self.index, self.cfg, self.template, part, self.judged)
            base = pairs
            progress = self.progress
            tick = time.monotonic()
            label_rows(rows, self.teacher, self.score_batch_size,
                       (lambda done, _n: progress(min(base + done, estimate), estimate)) if progress else None)
            labeling = time.monotonic() - tick
            write_pairs(out / part_name(number), rows)
            pairs += len(rows)
            yield PartDone(number, len(rows), skipped, labeling)


def part_name(number: int) -> str:
    return f"part-{number:05d}.parquet"


def label_rows(rows: list[dict], teacher: PairScorer, batch_size: int, progress: Progress | None = None) -> None:
    """Add the teacher's score and probabilities to each mined row, in place."""
    scored = teacher.score_with_distribution([(r["query"], r["text"]) for r in rows], batch_size, progress)
    for row, (score, probs) in zip(rows, scored):
        row.update(teacher_score=score, teacher_probs=probs, teacher=teacher.name, source="augmented")


@dataclass(frozen=True)
class AugmentReport:
    """What a run read, skipped and wrote, and how fast the teacher labeled."""

    log_lines: int
    malformed: int
    malformed_samples: list[str]
    distinct_queries: int
    excluded_eval_queries: int
    queries: int
    parts_done_before: int
    parts_written: int
    pairs_written: int
    skipped_judged: int
    pairs_total: int
    seconds: float
    pairs_per_second: float           # end to end: reading, retrieval, labeling, writing
    labeling_pairs_per_second: float  # the teacher alone
    output: str


def collect_queries(lines: Iterable[tuple[str, LogLine]], data: DataConfig, max_queries: int | None,
                    max_malformed: float) -> tuple[list[LoggedQuery], MalformedReport, int, int]:
    """Distinct training-split queries, most frequent first (at most ``max_queries``).

    Also the malformed report, how many distinct queries were evaluation queries (excluded), and how many
    distinct queries the log held in all (before the ``max_queries`` cap).
    """
    report, counter = MalformedReport(), QueryCounter()
    for source, line in lines:
        report.add(Path(source), line)
        if line.query is not None:
            counter.add(line.query)
    report.check(max_malformed)
    kept, excluded = [], 0
    for normalized, freq in counter.items():
        if split_of(normalized, data.split_fractions, data.split_salt) != "train":
            excluded += 1
            continue
        kept.append(LoggedQuery(counter.raw(normalized), normalized, freq))
    return (kept[:max_queries] if max_queries else kept), report, excluded, len(counter)


def log_lines(client: OpenSearch | None, cfg: AugmentConfig) -> Iterator[tuple[str, LogLine]]:
    """(source name, line) from the configured log files, or from the UBI index when none are given."""
    if cfg.logs:
        for path in cfg.logs:
            for line in iter_log_file(Path(path), cfg.query_field):
                yield path, line
        return
    if client is None:
        raise ConfigError("no query log given", "pass --log FILE or set augment.logs, or use a UBI index")
    from .ubi import iter_ubi_queries

    for line in iter_ubi_queries(client, cfg.ubi_index):
        yield cfg.ubi_index, line


def search_body(cfg: AugmentConfig, template: ProductTemplate, query: str) -> dict[str, Any]:
    """The retrieval request: the configured template, or BM25 ``multi_match`` over the template's fields."""
    if cfg.query_template is None:
        return bm25_query(query, template.fields, cfg.top_k)
    text = cfg.query_template.replace("{{query}}", json.dumps(query)[1:-1]).replace("{{size}}", str(cfg.top_k))
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise ConfigError(f"augment.query_template is not valid JSON after substitution ({err})",
                          "quote {{query}} inside a JSON string") from err


def spread(n: int, keep: int | None) -> list[int]:
    """``keep`` rank positions out of ``n``, evenly spread (top, bottom and between); all when keep is None."""
    if keep is None or keep >= n:
        return list(range(n))
    if keep <= 1:
        return [0]
    return sorted({round(i * (n - 1) / (keep - 1)) for i in range(keep)})


def retrieve(client: OpenSearch, index: str, cfg: AugmentConfig, template: ProductTemplate,
             query: LoggedQuery) -> list[dict[str, Any]]:
    """The query's hits from the first stage alone (``_none``: a default rerank pipeline is bypassed).

    One request per query: ``_msearch`` cannot choose the search pipeline.
    """
    with cluster_call(f"retrieve candidates for {query.text!r} from {index!r}",
                      "check the index and augment.query_template",
                      missing=ClusterError(f"index {index!r} does not exist", "run `reranker index-catalog` first")):
        result = send(client, index, search_body(cfg, template, query.text), query.text, None)
    return result["hits"]["hits"]


def fingerprint(queries: Sequence[LoggedQuery], cfg: AugmentConfig, template: ProductTemplate, index: str,
                teacher: str) -> str:
    """Parts can only be reused by a run with the same queries, retrieval, template and teacher."""
    h = hashlib.sha256(json.dumps([cfg.top_k, cfg.per_query, cfg.query_template, cfg.skip_judged,
                                   cfg.queries_per_part, asdict(template), index, teacher],
                                  default=list).encode())
    for q in queries:
        h.update(f"{q.normalized}\t{q.frequency}\n".encode())
    return h.hexdigest()


def augment(client: OpenSearch, index: str, cfg: AugmentConfig, data: DataConfig, template: ProductTemplate,
            teacher: PairScorer | None, judged: set[tuple[str, str]] | frozenset = frozenset(), restart: bool = False,
            progress: Progress | None = None, score_batch_size: int = 32,
            labeler: PartLabeler | None = None, teacher_id: str | None = None,
            replace_stale: bool = False) -> AugmentReport:
    """Mine, label and write pairs into ``cfg.output`` (resuming unless ``restart``); see the module docstring.

    ``judged`` holds (normalized query, product id) pairs with human labels, skipped when ``cfg.skip_judged``.
    The parts are done by ``labeler`` when given (e.g. on Ray), else here with ``teacher``. ``teacher_id``
    (``training.ensemble.teacher_fingerprint``: name and content hash) decides whether earlier parts were
    scored by this very teacher; without it, the teacher's name does. Parts made with another log, index,
    template or teacher stop the run with a ConfigError, or with ``replace_stale`` are discarded.
    """
    if labeler is None:
        if teacher is None:
            raise ValueError("augment needs a teacher or a labeler")
        labeler = LocalLabeler(client, index, cfg, template, teacher, judged, score_batch_size, progress)
    started = time.monotonic()
    queries, malformed, excluded, distinct = collect_queries(log_lines(client, cfg), data, cfg.max_queries,
                                                             cfg.max_malformed_fraction)
    if not queries:
        raise ConfigError(f"the query log holds no training-split queries ({malformed.total} lines read)",
                          "check the log source and augment.query_field")
    out = Path(cfg.output)
    parts = [queries[i:i + cfg.queries_per_part] for i in range(0, len(queries), cfg.queries_per_part)]
    stamp = fingerprint(queries, cfg, template, index, teacher_id or labeler.teacher_name)
    done_before = _prepare(out, stamp, len(parts), restart, replace_stale)
    todo = [(number, part) for number, part in enumerate(parts) if not (out / part_name(number)).exists()]
    written = pairs = skipped = 0
    labeling = 0.0
    for done in labeler.run(todo, out):
        written, pairs, skipped = written + 1, pairs + done.pairs, skipped + done.skipped
        labeling += done.labeling_s
    seconds = time.monotonic() - started
    total = _count_rows(out)
    report = AugmentReport(malformed.total, malformed.malformed, malformed.samples, distinct,
                           excluded, len(queries), done_before, written, pairs, skipped, total,
                           round(seconds, 2), round(pairs / seconds, 2) if seconds else 0.0,
                           round(pairs / labeling, 2) if labeling else 0.0, str(out))
    write_json_atomic(out / "report.json", asdict(report))
    return report


def part_rows(client: OpenSearch, index: str, cfg: AugmentConfig, template: ProductTemplate,
              part: Sequence[LoggedQuery], judged: set[tuple[str, str]] | frozenset) -> tuple[list[dict], int]:
    """A part's candidate rows (unlabeled) and how many judged pairs were skipped."""
    rows, skipped = [], 0
    for q in part:
        hits = retrieve(client, index, cfg, template, q)
        for position in spread(len(hits), cfg.per_query):
            hit = hits[position]
            if cfg.skip_judged and (q.normalized, hit["_id"]) in judged:
                skipped += 1
                continue
            rows.append({"query": q.text, "product_id": hit["_id"], "text": template.render(hit["_source"]),
                         "rank": position + 1, "retrieval_score": float(hit["_score"] or 0.0),
                         "query_frequency": q.frequency})
    return rows, skipped


def _prepare(out: Path, stamp: str, n_parts: int, restart: bool, replace_stale: bool = False) -> int:
    """Check (or start) the manifest; return how many parts an earlier run already wrote."""
    out.mkdir(parents=True, exist_ok=True)
    manifest = out / MANIFEST
    previous = json.loads(manifest.read_text()).get("fingerprint") if manifest.is_file() else None
    if previous is not None and previous != stamp and not (restart or replace_stale):
        raise ConfigError(f"{out} holds pairs from a different log, index, template or teacher",
                          "pass --restart to replace them, or another augment.output")
    if restart or previous != stamp:
        for stale in out.glob("part-*.parquet"):
            stale.unlink()
        write_json_atomic(manifest, {"fingerprint": stamp, "parts": n_parts})
    return len(list(out.glob("part-*.parquet")))


def _count_rows(out: Path) -> int:
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(p).metadata.num_rows for p in out.glob("part-*.parquet"))


def judged_pairs(dataset) -> set[tuple[str, str]]:
    """(normalized query, product id) of every human judgment, to skip when mining."""
    return {(normalize_query(j.query), j.product_id) for j in dataset.judgments}
