"""`augment` and `label` as Ray Data pipelines on a Ray cluster (``engine.kind: ray``).

Augment: parts of logged queries flow through retrieval actors
(``engine.search_concurrency`` of them, one search in flight each, so the search
cluster sees a bounded load) into teacher actors (``engine.scoring_actors``,
the model loaded once per actor, ``cpus_per_actor`` / ``gpus_per_actor`` each),
which label a part and write its Parquet file atomically. Parts, their names
and the manifest are the local engine's, so a run resumes across engines, and a
task Ray retries after a worker dies rewrites a whole part, never half of one.

Label: the judged pairs, in tasks of ``engine.pairs_per_task``, through the
same kind of teacher actors; the driver writes the one pairs file, in order.

Workers need this package installed (as the driver has it), and must reach the
OpenSearch cluster and the teacher directory (a shared path, or the same path).
"""
from __future__ import annotations

import hashlib
import ipaddress
import json
import socket
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from reranker_core.config import AugmentConfig, ClusterConfig, EngineConfig
from reranker_core.errors import ClusterError, ConfigError, OutputError, RerankerError
from reranker_core.files import write_json_atomic
from reranker_core.redact import redact_url
from reranker_core.template import ProductTemplate
from training.ensemble import teacher_name
from training.pairs import write_pairs

from ..connection import make_client
from .augment import MANIFEST, LoggedQuery, PartDone, Progress, label_rows, part_name, part_rows


ON_THIS_MACHINE = (None, "local", "auto")  # a Ray started here, or the one `ray start` left here


def ray_is_remote(address: str | None) -> bool:
    """Whether ``address`` names a Ray head on another machine (then its workers may be elsewhere too).

    None, "local" and "auto" are this machine's Ray; so is an address whose host is loopback or one of
    this machine's own addresses. A host name that does not resolve counts as remote.
    """
    if address in ON_THIS_MACHINE:
        return False
    host = urlsplit("//" + str(address).split("://", 1)[-1]).hostname or ""
    ips = _resolve(host)
    return not ips or not all(_is_mine(ip) for ip in ips)


def _resolve(host: str) -> set[str]:
    """The IPs ``host`` names (none when it does not resolve)."""
    try:
        return {info[4][0] for info in socket.getaddrinfo(host, None)}
    except (socket.gaierror, UnicodeError):
        return set()


def _is_mine(ip: str) -> bool:
    """Loopback, or an address this machine can bind (so one of its interfaces has it)."""
    address = ipaddress.ip_address(ip.split("%", 1)[0])
    if address.is_loopback:
        return True
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.bind((ip, 0))
        return True
    except OSError:
        return False


def check_workers_reach(engine: EngineConfig, cluster: ClusterConfig) -> None:
    """Refuse a loopback cluster URL when the Ray workers run on other machines: there it is their own host."""
    if engine.kind != "ray" or not ray_is_remote(engine.ray_address):
        return
    ips = _resolve(urlsplit(cluster.url).hostname or "")
    if ips and all(ipaddress.ip_address(ip.split("%", 1)[0]).is_loopback for ip in ips):
        raise ConfigError(f"cluster.url {redact_url(cluster.url)} is loopback, which the workers of the remote Ray "
                          f"cluster {engine.ray_address} cannot reach",
                          "pass --url (or set cluster.url) with the OpenSearch host name or IP the workers can reach")


def start_ray(engine: EngineConfig) -> None:
    """Join ``engine.ray_address`` (or start Ray on this machine when it is None); one line when it cannot."""
    import ray

    if ray.is_initialized():
        return
    where = engine.ray_address or "a new local Ray instance"
    try:
        if engine.ray_address is None:
            ray.init(log_to_driver=False, include_dashboard=False, logging_level="ERROR")
        else:
            ray.init(address=engine.ray_address, log_to_driver=False, logging_level="ERROR")
    except (ConnectionError, RuntimeError, ValueError) as err:
        raise ClusterError(f"cannot join the Ray cluster at {where} ({type(err).__name__})",
                           "start one with `ray start --head`, or fix engine.ray_address / --ray-address") from err
    from ray.data import DataContext

    DataContext.get_current().enable_progress_bars = False  # the CLI shows its own


def _read_probe(path: str) -> str:
    """What a worker reads at ``path`` ("" when it cannot): the driver compares it with what it wrote."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError:
        return ""


def nodes_missing(probe: Path, token: str) -> list[str]:
    """The alive Ray nodes (by IP) whose workers do not read ``token`` at ``probe``: one task pinned to each."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    read = ray.remote(num_cpus=0)(_read_probe)
    nodes = [n for n in ray.nodes() if n["Alive"]]
    seen = ray.get([read.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False))
                    .remote(str(probe)) for n in nodes])
    return sorted({n["NodeManagerAddress"] for n, text in zip(nodes, seen) if text != token})


def check_workers_see(out: Path) -> None:
    """Refuse before any work when a worker cannot read a file the driver wrote under ``out``.

    Otherwise each worker would write its parts to its own disk and the run would look finished.
    """
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex
    probe = out / f".ray-probe-{token}"
    probe.write_text(token, encoding="utf-8")
    try:
        missing = nodes_missing(probe, token)
    finally:
        probe.unlink(missing_ok=True)
    refuse_unseen(out, missing)


def refuse_unseen(out: Path, missing: Sequence[str]) -> None:
    """The one line for nodes that did not read the probe (none: nothing to refuse)."""
    if missing:
        raise ConfigError(f"workers cannot see {out} (Ray node(s) {', '.join(missing)})",
                          "use a shared filesystem path for the output")


def check_part(out: Path, number: int, pairs: int) -> None:
    """The part a worker reported must be here with the rows it reported (not so on a non-shared disk).

    A part that is not removes itself, so the rerun the error suggests writes it again.
    """
    path = Path(out) / part_name(number)
    found = _part_rows(path)
    if found == pairs:
        return
    path.unlink(missing_ok=True)
    seen = {None: "is missing", -1: "is not readable Parquet"}.get(found, f"holds {found} pairs")
    raise OutputError(f"{path} {seen}, but its Ray worker reported {pairs} pairs written",
                      "use a shared filesystem path for the output, then rerun to resume")


def _part_rows(path: Path) -> int | None:
    """Rows in the Parquet file at ``path``; None when it is missing, -1 when it is not readable Parquet."""
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(path).metadata.num_rows
    except FileNotFoundError:
        return None
    except (OSError, ValueError):  # ArrowInvalid is a ValueError: a truncated file
        return -1


class _Retriever:
    """A Ray actor holding one OpenSearch client: a part's queries -> its candidate rows (unlabeled)."""

    def __init__(self, cluster: ClusterConfig, index: str, cfg: AugmentConfig, template: ProductTemplate,
                 judged: frozenset) -> None:
        self.client, self.index, self.cfg, self.template, self.judged = (make_client(cluster), index, cfg,
                                                                         template, judged)

    def __call__(self, batch: dict[str, Any]) -> dict[str, list]:
        out: dict[str, list] = {"part": [], "rows": [], "skipped": [], "error": []}
        for number, queries in zip(batch["part"], batch["queries"]):
            part = [LoggedQuery(**q) for q in json.loads(queries)]
            rows, skipped, error = [], 0, ""
            try:
                rows, skipped = part_rows(self.client, self.index, self.cfg, self.template, part, self.judged)
            except RerankerError as err:
                error = _encode(err)
            out["part"].append(int(number))
            out["rows"].append(json.dumps(rows))
            out["skipped"].append(skipped)
            out["error"].append(error)
        return out


class _TeacherActor:
    """A Ray actor that loads the teacher once."""

    def __init__(self, teacher_dir: str, batch_size: int) -> None:
        from training.ensemble import load_teacher

        self.teacher, self.batch_size = load_teacher(Path(teacher_dir)), batch_size


class _PartWriter(_TeacherActor):
    """Label a part's rows and write its Parquet file (atomically) into ``out``."""

    def __init__(self, teacher_dir: str, batch_size: int, out: str) -> None:
        super().__init__(teacher_dir, batch_size)
        self.out = Path(out)

    def __call__(self, batch: dict[str, Any]) -> dict[str, list]:
        done: dict[str, list] = {"part": [], "pairs": [], "skipped": [], "labeling_s": [], "error": []}
        for number, rows_json, skipped, error in zip(batch["part"], batch["rows"], batch["skipped"],
                                                     batch["error"]):
            rows = json.loads(rows_json)
            tick = time.monotonic()
            if not error:  # a part whose retrieval failed is passed on, never written
                try:
                    label_rows(rows, self.teacher, self.batch_size)
                    write_pairs(self.out / part_name(int(number)), rows)
                except RerankerError as err:
                    error = _encode(err)
            done["labeling_s"].append(time.monotonic() - tick)
            done["part"].append(int(number))
            done["pairs"].append(len(rows))
            done["skipped"].append(int(skipped))
            done["error"].append(error)
        return done


class _ChunkScorer(_TeacherActor):
    """Score a chunk of (query, text) pairs."""

    def __call__(self, batch: dict[str, Any]) -> dict[str, list]:
        scored, errors = [], []
        for pairs in batch["pairs"]:
            try:
                scored.append(json.dumps(self.teacher.score_with_distribution(json.loads(pairs), self.batch_size)))
                errors.append("")
            except RerankerError as err:
                scored.append("[]")
                errors.append(_encode(err))
        return {"chunk": [int(c) for c in batch["chunk"]], "scored": scored, "error": errors}


def _teacher_pool(engine: EngineConfig) -> dict[str, Any]:
    resources: dict[str, Any] = {"concurrency": engine.scoring_actors, "num_cpus": engine.cpus_per_actor}
    if engine.gpus_per_actor:
        resources["num_gpus"] = engine.gpus_per_actor
    return resources


def _encode(err: RerankerError) -> str:
    """A user-fixable error as data: Ray does not carry an exception's type back through Ray Data."""
    return json.dumps({"type": type(err).__name__, "message": err.message, "fix": err.fix})


def _decode(text: str) -> RerankerError:
    from reranker_core import errors

    found = json.loads(text)
    kind = getattr(errors, found["type"], RerankerError)
    return (kind if isinstance(kind, type) and issubclass(kind, RerankerError) else RerankerError)(
        found["message"], found["fix"])


def _rows(dataset) -> Iterator[dict[str, Any]]:
    """The dataset's output rows; a worker's RerankerError comes back as the same one-line error."""
    from ray.exceptions import RayError, RayTaskError

    try:
        for row in dataset.iter_rows():
            if row.get("error"):
                raise _decode(row["error"])
            yield row
    except RayTaskError as err:
        raise RerankerError(f"a Ray task failed: {str(err).splitlines()[0][:300]}",
                            "see the Ray logs (/tmp/ray/session_latest/logs)") from err
    except RayError as err:
        raise ClusterError(f"the Ray job failed ({type(err).__name__}: {str(err).splitlines()[0][:200]})",
                           "check the Ray cluster; rerunning resumes from the parts already written") from err


class RayLabeler:
    """augment's :class:`~.augment.PartLabeler` on Ray (see the module docstring)."""

    def __init__(self, engine: EngineConfig, cluster: ClusterConfig, index: str, cfg: AugmentConfig,
                 template: ProductTemplate, teacher_dir: Path, judged: set[tuple[str, str]] | frozenset = frozenset(),
                 score_batch_size: int = 32, progress: Progress | None = None) -> None:
        self.engine, self.cluster, self.index, self.cfg, self.template = engine, cluster, index, cfg, template
        self.teacher_dir, self.judged = Path(teacher_dir).resolve(), frozenset(judged)
        self.score_batch_size, self.progress = score_batch_size, progress
        self.teacher_name = teacher_name(self.teacher_dir)
        check_workers_reach(engine, cluster)

    def run(self, todo: Sequence[tuple[int, Sequence[LoggedQuery]]], out: Path) -> Iterator[PartDone]:
        if not todo:
            return
        start_ray(self.engine)
        check_workers_see(out)
        import ray.data

        items = [{"part": n, "queries": json.dumps([asdict(q) for q in part])} for n, part in todo]
        dataset = (ray.data.from_items(items, override_num_blocks=len(items))
                   .map_batches(_Retriever, batch_size=1, concurrency=self.engine.search_concurrency, num_cpus=0,
                                fn_constructor_kwargs={"cluster": self.cluster, "index": self.index, "cfg": self.cfg,
                                                       "template": self.template, "judged": self.judged})
                   .map_batches(_PartWriter, batch_size=1, **_teacher_pool(self.engine),
                                fn_constructor_kwargs={"teacher_dir": str(self.teacher_dir),
                                                       "batch_size": self.score_batch_size,
                                                       "out": str(Path(out).resolve())}))
        estimate = sum(len(part) for _, part in todo) * min(self.cfg.top_k, self.cfg.per_query or self.cfg.top_k)
        pairs = 0
        for row in _rows(dataset):
            check_part(Path(out), int(row["part"]), int(row["pairs"]))
            pairs += int(row["pairs"])
            if self.progress:
                self.progress(min(pairs, estimate), estimate)
            yield PartDone(int(row["part"]), int(row["pairs"]), int(row["skipped"]), float(row["labeling_s"]))


def score_on_ray(engine: EngineConfig, teacher_dir: Path, pairs: Sequence[tuple[str, str]], batch_size: int,
                 progress: Progress | None = None, parts: Path | None = None, teacher_id: str = "",
                 resumed: Callable[[int, int], None] | None = None) -> list[tuple[float, list[float]]]:
    """``teacher.score_with_distribution(pairs)``, computed by a pool of teacher actors; same order.

    With ``parts`` (a folder), each scored chunk is kept there as it arrives and a rerun with the same
    pairs, chunk size and teacher (``teacher_id``: its content fingerprint) scores only the missing ones;
    ``resumed(done, total)`` hears how many chunks were kept. The caller removes ``parts`` once done.
    """
    size = engine.pairs_per_task
    chunks = [list(pairs[i:i + size]) for i in range(0, len(pairs), size)]
    if not chunks:
        return []
    found = _kept_chunks(parts, _label_stamp(pairs, size, teacher_id), len(chunks)) if parts else {}
    if resumed:
        resumed(len(found), len(chunks))
    todo = [i for i in range(len(chunks)) if i not in found]
    if todo:
        start_ray(engine)
        import ray.data

        items = [{"chunk": i, "pairs": json.dumps(chunks[i])} for i in todo]
        dataset = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
            _ChunkScorer, batch_size=1, **_teacher_pool(engine),
            fn_constructor_kwargs={"teacher_dir": str(Path(teacher_dir).resolve()), "batch_size": batch_size})
        for row in _rows(dataset):
            found[int(row["chunk"])] = scored = json.loads(row["scored"])
            if parts:
                write_json_atomic(parts / _chunk_name(int(row["chunk"])), scored)
            if progress:
                progress(sum(len(chunks[c]) for c in found), len(pairs))
    return [(float(s), [float(p) for p in probs]) for i in range(len(chunks)) for s, probs in found[i]]


def _chunk_name(number: int) -> str:
    return f"chunk-{number:05d}.json"


def _label_stamp(pairs: Sequence[tuple[str, str]], size: int, teacher_id: str) -> str:
    """Kept chunks are reused only for the same pairs, cut the same way, scored by the same teacher."""
    h = hashlib.sha256(json.dumps([size, teacher_id]).encode())
    for query, text in pairs:
        h.update(json.dumps([query, text]).encode() + b"\n")
    return h.hexdigest()


def _kept_chunks(parts: Path, stamp: str, n_chunks: int) -> dict[int, list]:
    """The chunks an earlier run with this ``stamp`` scored; another run's chunks are discarded."""
    parts.mkdir(parents=True, exist_ok=True)
    manifest = parts / MANIFEST
    previous = json.loads(manifest.read_text()).get("fingerprint") if manifest.is_file() else None
    if previous != stamp:
        for stale in parts.glob("chunk-*.json"):
            stale.unlink()
        write_json_atomic(manifest, {"fingerprint": stamp, "chunks": n_chunks})
    kept: dict[int, list] = {}
    for i in range(n_chunks):
        path = parts / _chunk_name(i)
        if path.is_file():
            kept[i] = json.loads(path.read_text(encoding="utf-8"))
    return kept
