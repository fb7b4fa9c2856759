"""The steps that talk to a cluster, as plain functions: node up, index the catalog, implicit judgments, label,
augment, deploy, evaluate.

Each takes the loaded :class:`Config` (its sections already carrying any command-line overrides) plus what the
step needs explicitly, reports through an :class:`Output` (quiet by default) and returns what it produced.
``client`` is an open client to reuse; None connects with ``config.cluster`` at the point the step first needs
the cluster (after the checks that need none, so a bad input is reported as such). The `reranker` verbs and
`reranker run` (:mod:`.main_job`) call these. The training steps are in ``training.api``.
"""
from __future__ import annotations

import json
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from opensearchpy import OpenSearch

from reranker_core.config import Config, override
from reranker_core.errors import ConfigError, RerankerError
from reranker_core.output import QUIET, Output
from training.api import PAIRS_DIR
from training.datasets import load_data

from ..connection import connect
from ..mlcommons.deploy import DeployResult
from ..node.local import LocalNode, NodeStatus
from .augment import AugmentReport
from .catalog import IndexReport


def _connected(config: Config, client: OpenSearch | None) -> OpenSearch:
    return client if client is not None else connect(config.cluster)


@dataclass(frozen=True)
class NodeUp:
    """The local node after :func:`start_local_node`, and the models it had to deploy again."""

    node: LocalNode
    status: NodeStatus
    restored: list[str]


def start_local_node(config: Config, *, port: int | None = None, secure: bool = False,
                     out: Output = QUIET) -> NodeUp:
    """Start the local node (a no-op if it runs), then deploy again every model a rerank pipeline uses that
    does not answer, so reranked search works when this returns."""
    from ..mlcommons.deploy import restore_serving

    started = time.monotonic()
    key = "secure_port" if secure else "port"
    node = LocalNode(override(config.local_node, **{key: port}), secure=secure)
    with out.status("starting the local OpenSearch node…"):
        status = node.up()
    with out.status("checking that the rerank pipelines' models answer…"):
        restored = restore_serving(connect(node.cluster_config(), wait_s=30))
    if restored:
        out.say(f"deployed again after the restart: {', '.join(restored)}")
    out.say(f"OpenSearch {status.version} up at {status.url} (pid {status.pid}, {status.health}) "
            f"in {time.monotonic() - started:.1f}s")
    return NodeUp(node, status, restored)


def index_products(config: Config, client: OpenSearch | None = None, *, catalog: Path | None = None,
                   index: str | None = None, out: Output = QUIET) -> IndexReport:
    """Bulk-index ``catalog`` (a file), or the configured dataset's products, into ``index`` (deploy.index).
    Rows the cluster rejects are listed by id and raise a RerankerError after the rest is indexed."""
    from training.datasets import read_catalog

    from .catalog import index_catalog

    index = index or config.deploy.index
    products = read_catalog(catalog) if catalog else load_data(config).products
    client = _connected(config, client)
    with out.progress(f"indexing into {index}", "docs") as update:
        report = index_catalog(client, index, list(products.items()), config.template, progress=update)
    out.say(f"{report.indexed} products indexed into {index!r}; {len(report.failed)} failed")
    for product_id, reason in report.failed[:10]:
        out.warn(f"  product {product_id}: {reason}")
    if report.failed:
        raise RerankerError(f"{len(report.failed)} product(s) were not indexed (first: {report.failed[0][0]})",
                            "fix those rows and re-run; indexed products are updated, not duplicated")
    return report


def simulate_clicks(config: Config, client: OpenSearch | None = None, *, index: str | None = None,
                    out: Output = QUIET) -> dict:
    """Simulated UBI sessions by ``config.clicks``' click model over ``index``'s (deploy.index) BM25 pages for
    training-split queries, into clicks.*_index, with the sidecar at clicks.sidecar; returns the sidecar's content."""
    from training.clicksim import ClickModel

    from .simulate import SimulationPlan, simulate_events

    cfg = config.clicks
    model = ClickModel(cfg.model, cfg.eta, cfg.attractiveness_min, cfg.attractiveness_max,
                       cfg.unjudged_attractiveness, cfg.noise)
    dataset = load_data(config)  # a bad data file is named before the cluster is needed
    summary = simulate_events(_connected(config, client), index or config.deploy.index, config.template.fields,
                              dataset, config.data.split_fractions, config.data.split_salt, model,
                              SimulationPlan(cfg.sessions, cfg.max_queries, cfg.top_k, cfg.seed), cfg.events_index,
                              cfg.queries_index, Path(cfg.sidecar))
    out.say(f"SIMULATED: {summary['query_docs']} sessions over {summary['queries']} training queries, "
            f"{summary['events']} events ({summary['clicks']} clicks) into {cfg.queries_index!r} / "
            f"{cfg.events_index!r}; parameters and seed in {cfg.sidecar}")
    return summary


def implicit_judgments(config: Config, client: OpenSearch | None = None, *, events_file: Path | None = None,
                       queries_file: Path | None = None, name: str = "implicit-judgments",
                       out: Output = QUIET) -> tuple[Path, Path]:
    """COEC (or CTR, ``clicks.metric``) implicit judgments per (training query, product) from UBI events, read
    from the export files given or else from clicks.*_index; writes clicks.output and its provenance sidecar,
    returned as ``(judgments, sidecar)``."""
    from training.clicksim import SIMULATED_APPLICATION
    from training.implicit import export_judgments
    from training.implicit import implicit_judgments as compute

    from .ubi_events import EventSource, read_joined_events

    cfg = config.clicks
    source = EventSource(events_file, queries_file, cfg.events_index, cfg.queries_index)
    if events_file is None or queries_file is None:
        client = _connected(config, client)
    read = read_joined_events(client, source, cfg.max_malformed_fraction)
    for report in (read.query_report, read.report):
        if report.malformed:
            out.warn(f"{report.malformed} of {report.total} {report.what} malformed; e.g. "
                     + "; ".join(report.samples[:3]))
    result = compute(read.events, config.data.split_fractions, config.data.split_salt, cfg.max_rank)
    simulated = sum(1 for e in read.events if e.event.application == SIMULATED_APPLICATION)
    provenance = {"simulated": simulated > 0, "simulated_events": simulated, "events_read": len(read.events),
                  "source": source.describe(), "max_rank": cfg.max_rank,
                  "split_fractions": list(config.data.split_fractions), "split_salt": config.data.split_salt}
    if simulated:
        provenance["simulation"] = simulation_record(Path(cfg.sidecar), None if events_file else cfg.events_index)
    path, side = export_judgments(Path(cfg.output), result, name, cfg.metric, provenance)
    label = f"SIMULATED ({simulated} of {len(read.events)} events simulated): " if simulated else ""
    out.say(f"{label}{len(result.judgments)} implicit judgments ({cfg.metric}) over "
            f"{len({j.query for j in result.judgments})} training queries from {result.events_used} events "
            f"({result.excluded_eval_events} events of {result.excluded_eval_queries} held-out queries "
            f"excluded) in {path}; provenance in {side}")
    return path, side


def simulation_record(sidecar: Path, events_index: str | None) -> dict:
    """The simulation sidecar to embed, or why it is not there (missing, or written for another index)."""
    if not sidecar.is_file():
        return {"note": f"simulation sidecar {sidecar} not found: parameters unknown (set clicks.sidecar)"}
    record = json.loads(sidecar.read_text(encoding="utf-8"))
    if events_index is not None and record.get("events_index") != events_index:
        return {"note": f"{sidecar} describes index {record.get('events_index')!r}, not {events_index!r}: "
                        "parameters unknown (set clicks.sidecar)"}
    return record


def label_pairs(config: Config, teacher_dir: Path, *, split: str = "train", max_queries: int | None = None,
                output: Path | None = None, plain_scores: Sequence[Path] = (), out: Output = QUIET) -> Path:
    """Score ``split``'s judged pairs with the teacher once (here, or on Ray with ``engine.kind: ray``, resuming
    from kept chunks); returns the pairs file (default runs/pairs/judged-<split>.parquet). ``plain_scores``: pairs
    files the teacher's own plain cross-encoder labeled (:func:`_local_teacher`)."""
    from reranker_core.template import ProductTemplate
    from training.ensemble import teacher_name
    from training.models import read_meta
    from training.pairs import write_pairs
    from training.teacher import teacher_examples

    dataset = load_data(config)
    on_ray = config.engine.kind == "ray"
    teacher = _local_teacher(config, teacher_dir, plain_scores, out)
    template = teacher.template if teacher else ProductTemplate(**read_meta(teacher_dir)["template"])
    judged = dataset.split(split, config.data.split_fractions, config.data.split_salt)
    examples = teacher_examples(judged, dataset.products, template, "binary", dataset.grade_levels,
                                max_queries, config.teacher.seed)
    pairs = [(e.query, e.text) for e in examples]
    target = output or PAIRS_DIR / f"judged-{split}.parquet"
    parts = target.with_name(target.name + ".parts")  # kept chunks on Ray: a rerun resumes
    with out.progress("labeling judged pairs", "pairs") as update:
        if teacher is None:
            from training.ensemble import teacher_fingerprint

            from .ray_engine import score_on_ray

            def resumed(done: int, total: int) -> None:
                if done:
                    out.warn(f"resumed: {done} of {total} chunks were already scored")

            scored = score_on_ray(config.engine, teacher_dir, pairs, config.teacher.score_batch_size, update,
                                  parts, teacher_fingerprint(teacher_dir), resumed=resumed)
        else:
            scored = teacher.score_with_distribution(pairs, config.teacher.score_batch_size, update)
    name = teacher.name if teacher else teacher_name(teacher_dir)
    rows = [{"query": e.query, "product_id": e.product_id, "text": e.text, "teacher_score": score,
             "teacher_probs": probs, "teacher": name, "source": "judged", "label": e.label}
            for e, (score, probs) in zip(examples, scored)]
    written = write_pairs(target, rows)
    if on_ray:
        shutil.rmtree(parts, ignore_errors=True)  # the pairs file is whole: the kept chunks are spent
    out.say(f"{len(rows)} teacher-scored pairs ({len({r['query'] for r in rows})} queries) -> {written}")
    return written


def augment_pool(config: Config, teacher_dir: Path, client: OpenSearch | None = None, *, logs: Sequence[Path] = (),
                 index: str | None = None, restart: bool = False, replace_stale: bool = False,
                 plain_scores: Sequence[Path] = (), out: Output = QUIET) -> AugmentReport:
    """Mine (query, product) pairs from query ``logs`` (none: augment.logs, else the UBI index) via ``index``'s
    BM25 top-K and label them with the teacher, here or on Ray (``engine.kind``); resumes from earlier parts
    unless ``restart``, and with ``replace_stale`` discards parts another log, index, template or teacher made.
    ``plain_scores``: as :func:`label_pairs`'."""
    from training.ensemble import teacher_fingerprint

    from .augment import augment, judged_pairs

    if config.engine.kind == "ray":
        from .ray_engine import check_workers_reach

        check_workers_reach(config.engine, config.cluster)  # before any work
    cfg = override(config.augment, logs=tuple(map(str, logs)) or None)
    judged = judged_pairs(load_data(config)) if cfg.skip_judged and config.data.path else frozenset()
    client = _connected(config, client)
    teacher = _local_teacher(config, teacher_dir, plain_scores, out)  # once the cluster answers: loading is slow
    index = index or config.deploy.index
    teacher_id = teacher_fingerprint(teacher_dir)  # by content: a retrained teacher re-scores every pair
    with out.progress("mining and labeling", "pairs") as update:
        if config.engine.kind == "ray":
            from .ray_engine import RayLabeler

            labeler = RayLabeler(config.engine, config.cluster, index, cfg, config.template, teacher_dir, judged,
                                 config.teacher.score_batch_size, update)
            report = augment(client, index, cfg, config.data, config.template, None, restart=restart,
                             labeler=labeler, teacher_id=teacher_id, replace_stale=replace_stale)
        else:
            report = augment(client, index, cfg, config.data, config.template, teacher, judged, restart, update,
                             config.teacher.score_batch_size, teacher_id=teacher_id, replace_stale=replace_stale)
    if report.malformed:
        out.warn(f"{report.malformed} of {report.log_lines} log lines malformed; e.g. "
                 + "; ".join(report.malformed_samples[:3]))
    resumed = f" (resumed: {report.parts_done_before} parts were already done)" if report.parts_done_before else ""
    out.say(f"{report.queries} queries ({report.excluded_eval_queries} evaluation queries excluded), "
            f"{report.pairs_written} new pairs in {report.seconds:.0f}s{resumed}: "
            f"{report.pairs_per_second:.1f} pairs/s end to end, teacher {report.labeling_pairs_per_second:.1f} "
            f"pairs/s; {report.skipped_judged} judged pairs skipped; {report.pairs_total} pairs in {report.output}")
    return report


def deploy_model(config: Config, model_zip: Path, client: OpenSearch | None = None, *,
                 out: Output = QUIET) -> DeployResult:
    """Validate ``model_zip``, register and deploy it, then point deploy.pipeline at it (after a test
    prediction); deploy.document_fields default to the template's."""
    from reranker_core.model_zip import validate_zip

    from ..mlcommons.deploy import deploy

    cfg = override(config.deploy, document_fields=config.deploy.document_fields or config.template.document_fields)
    artifact = validate_zip(model_zip)
    client = _connected(config, client)
    with out.stages() as report:
        result = deploy(client, artifact, cfg, report)
    how = "reused" if result.reused else "registered"
    out.say(f"model {result.model_id} ({how}, {artifact.size_bytes / 1e6:.1f} MB) deployed; "
            f"pipeline {result.pipeline!r} now reranks {cfg.index!r} on {', '.join(cfg.document_fields)}")
    if result.previous_undeployed:
        out.say(f"previous model {result.previous_model_id} undeployed (still registered)")
    elif result.previous_model_id:
        out.say(f"previous model {result.previous_model_id} is still deployed: "
                f"`reranker models undeploy -- {result.previous_model_id}` frees its memory")
    return result


def evaluate_pipelines(config: Config, client: OpenSearch | None = None, *, pipelines: Sequence[str] = (),
                       offline: Sequence[Path] = (), index: str | None = None, out: Output = QUIET) -> dict:
    """BM25 alone vs rerank ``pipelines`` (evaluate.pipelines, else deploy.pipeline) through the cluster on
    evaluate.split's judged lists, plus random order and any ``offline`` checkpoints or zips scored here; with
    95% intervals and paired differences. Writes evaluate.output (and its PNG) and returns what it holds."""
    from training.bootstrap import random_per_query
    from training.evaluate import judged_lists, load_scorer, ranked_lists

    from .evaluate import BM25, rank_through_cluster, report_comparison

    cfg = config.evaluate
    dataset = load_data(config)
    lists = judged_lists(dataset, cfg.split, config.template, config.data.split_fractions, config.data.split_salt,
                         cfg.max_queries)
    labels = {j.query: dict(zip(j.product_ids, j.labels)) for j in lists}
    served = list(pipelines or cfg.pipelines or (config.deploy.pipeline,))
    client = _connected(config, client)
    with out.progress("searching", "queries") as update:
        ranked = rank_through_cluster(client, index or config.deploy.index, labels, config.template.fields,
                                      [None, *served], progress=update)
    for model in offline:
        scorer = load_scorer(model)
        with out.progress(f"scoring with {scorer.name} offline", "pairs") as update:
            ranked[f"{scorer.name} (offline)"] = ranked_lists(scorer, lists, update)
    systems = {"random": random_per_query([j.labels for j in lists]), **ranked}
    pairs = [(name, BM25) for name in systems if name not in ("random", BM25)]
    pairs += [(served[0], name) for name in systems if name not in ("random", BM25, served[0])]
    return report_comparison(systems, pairs, f"{dataset.name} {cfg.split} split through the cluster, {len(lists)} "
                             "judged lists", Path(cfg.output), config.data.relevant_threshold, out)


def evaluate_offline(config: Config, models: Sequence[Path], *, split: str = "test", max_queries: int | None = None,
                     json_path: Path = Path("runs/evaluate-offline.json"), out: Output = QUIET) -> dict:
    """``models`` (checkpoints or zips) scored here, without a cluster, on ``split``'s judged lists beside random
    order: NDCG@5/@10, MRR and pairwise accuracy with 95% intervals, each model paired with random and the first
    model with the others. Writes ``json_path`` (and its PNG) and returns what it holds."""
    from training.bootstrap import random_per_query
    from training.evaluate import judged_lists, load_scorer, ranked_lists

    from .evaluate import report_comparison

    dataset = load_data(config)
    lists = judged_lists(dataset, split, config.template, config.data.split_fractions, config.data.split_salt,
                         max_queries)
    systems = {"random": random_per_query([j.labels for j in lists])}
    for model in models:
        scorer = load_scorer(model)
        with out.progress(f"scoring with {scorer.name}", "pairs") as update:
            systems[scorer.name] = ranked_lists(scorer, lists, update)
    names = [n for n in systems if n != "random"]
    pairs = [(n, "random") for n in names] + [(names[0], n) for n in names[1:]]
    return report_comparison(systems, pairs, f"{dataset.name} {split} split, offline, {len(lists)} judged lists",
                             json_path, config.data.relevant_threshold, out)


def _local_teacher(config: Config, teacher_dir: Path, plain_scores: Sequence[Path], out: Output):
    """The teacher that labels here (None on Ray: its workers load their own), serving its plain cross-encoder's
    scores from ``plain_scores`` (pairs files that encoder labeled: the behaviour study relabels the main job's
    pool), checked on a sample first."""
    from training.ensemble import EnsembleTeacher, known_scores, load_teacher

    if config.engine.kind == "ray":
        if plain_scores:
            raise ConfigError("reusing plain scores runs here only", "set engine.kind: local for this labeling")
        return None
    teacher = load_teacher(teacher_dir)
    if not plain_scores:
        return teacher
    if not isinstance(teacher, EnsembleTeacher):
        raise ConfigError("plain scores can be reused by an ensemble teacher only", "score without reuse")
    known = known_scores(plain_scores)
    teacher.reuse_plain_scores(known)
    out.say(f"reusing the plain cross-encoder's scores of {len(known)} pairs from "
            + ", ".join(map(str, plain_scores)) + " (a sample of 64 rescored: they match)")
    return teacher
