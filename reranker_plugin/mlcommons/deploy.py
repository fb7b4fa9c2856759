"""Register, upload, deploy and wire a model zip into a rerank pipeline — all or nothing.

Order matters: the pipeline that serves traffic is touched only after the new
model answered a test prediction. Any failure before that removes what this run
created, so re-running converges: a model already registered with the same
sha256 is reused, and a half-registered one older than the deploy timeout (a
killed upload's leftover) is deleted first. A younger one may be another
operator's upload in progress: it is left alone, and this deploy uploads its own.
A replaced model is undeployed (``undeploy_previous``) only after the searches
still running on it have drained: undeploying under them crashes the node.
"""
from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from opensearchpy import OpenSearch

from reranker_core.config import DeployConfig
from reranker_core.errors import ClusterError, ConfigError, DeployError, RerankerError
from reranker_core.model_zip import ModelArtifact

from .client import COMPLETE_STATES, MLCommons
from .pipeline import (get_pipeline, pipeline_model_id, pipelines_by_model, put_pipeline, render_pipeline,
                       set_default_pipeline)

log = logging.getLogger(__name__)

#: States a deploy ends in: no deploy of the model is under way.
SETTLED_STATES = {"DEPLOYED", "DEPLOY_FAILED", "PARTIALLY_DEPLOYED", "UNDEPLOYED"}
#: How ML Commons fails a deploy sent while another deploy of the same model runs.
RACED_DEPLOY = ("Duplicate deploy model task", "version conflict")

#: A replaced model is undeployed only once no prediction of it has begun for this long. ML Commons closes the
#: ONNX session under a running prediction, and ONNX Runtime then crashes the whole node (SIGSEGV; seen with
#: 20 clients searching through the pipeline while `undeploy_previous` freed the old model at once).
DRAIN_QUIET_S = 3.0
#: Longer than this in use (e.g. called directly, not through a pipeline), and the replaced model is left deployed.
DRAIN_TIMEOUT_S = 60.0

Progress = Callable[[str, int, int], None]
"""Callback ``(stage, done, total)`` for progress display."""


@dataclass(frozen=True)
class DeployResult:
    model_id: str
    reused: bool
    pipeline: str
    previous_model_id: str | None
    previous_undeployed: bool = False


def register_meta_body(artifact: ModelArtifact, cfg: DeployConfig, group_id: str) -> dict:
    """``_register_meta`` body; function_name comes first so ML Commons parses model_config for it."""
    return {
        "name": cfg.model_name,
        "version": cfg.model_version,
        "function_name": "TEXT_SIMILARITY",
        "description": f"cross-encoder reranker, {artifact.precision}, {artifact.layers or '?'} layers, "
                       f"max {artifact.max_length} tokens, sha256 {artifact.sha256[:12]}",
        "model_format": "ONNX",
        "model_group_id": group_id,
        "model_content_size_in_bytes": artifact.size_bytes,
        "model_content_hash_value": artifact.sha256,
        "total_chunks": artifact.total_chunks(cfg.chunk_size_bytes),
        "model_config": {
            "model_type": artifact.hf_config.get("model_type", "bert"),
            "embedding_dimension": 1,
            "framework_type": "huggingface_transformers",
            # ML Commons keeps all_config as an opaque string: it carries the precision to `reranker models list`
            "all_config": json.dumps({"model_type": "bert", **artifact.hf_config, "precision": artifact.precision}),
        },
    }


def deploy(client: OpenSearch, artifact: ModelArtifact, cfg: DeployConfig,
           progress: Progress | None = None) -> DeployResult:
    """Make ``artifact`` the model behind ``cfg.pipeline``; see the module docstring for guarantees."""
    if not cfg.document_fields:
        raise ConfigError("deploy.document_fields is not resolved", "pass the template's fields (Config.document_fields)")
    report = progress or (lambda stage, done, total: None)
    ml = MLCommons(client)
    previous = pipeline_model_id(get_pipeline(client, cfg.pipeline))
    model_id, reused = _registered_model(ml, artifact, cfg, report)
    try:
        if (ml.get_model(model_id) or {}).get("model_state") != "DEPLOYED":
            report("deploy", 0, 1)
            _deploy_once(ml, model_id, cfg.deploy_timeout_s)
            report("deploy", 1, 1)
        scores = ml.predict(model_id, "test query", ["test document"])
        if len(scores) != 1:
            raise DeployError(f"model {model_id} returned {len(scores)} scores for 1 document",
                              "the zip's output must be [batch, 1]")
        _await_deployed(ml, model_id, cfg.deploy_timeout_s)
    except RerankerError:
        if model_id != previous:  # never remove the model the pipeline is serving with
            _rollback(ml, model_id)
        raise
    put_pipeline(client, cfg.pipeline, render_pipeline(model_id, cfg.document_fields))
    if cfg.default_pipeline:
        set_default_pipeline(client, cfg.index, cfg.pipeline)
    previous = previous if previous != model_id else None
    freed = cfg.undeploy_previous and previous is not None and _undeploy_unused(ml, client, previous)
    return DeployResult(model_id, reused, cfg.pipeline, previous, freed)


def _undeploy_unused(ml: MLCommons, client: OpenSearch, model_id: str) -> bool:
    """Undeploy a replaced model unless another pipeline still uses it: ML Commons caps deployed models per node."""
    if model_id in pipelines_by_model(client):
        return False
    if not _drained(ml, model_id):
        log.warning("left the previous model %s deployed: it still answered predictions %.0f s after the switch",
                    model_id, DRAIN_TIMEOUT_S)
        return False
    try:
        ml.undeploy(model_id)
    except ClusterError as err:  # the new model serves already; a model that cannot be freed is not a failed deploy
        log.warning("could not undeploy the previous model %s: %s", model_id, err)
        return False
    return True


def _drained(ml: MLCommons, model_id: str, quiet_s: float = DRAIN_QUIET_S, timeout_s: float = DRAIN_TIMEOUT_S,
             poll_s: float = 0.5) -> bool:
    """Wait until no prediction of ``model_id`` has begun for ``quiet_s`` (searches sent before the pipeline
    switched are done by then); False if it is still in use after ``timeout_s``. Without ML Commons' stats
    (refused to the user) this is a plain ``quiet_s`` wait."""
    deadline = time.monotonic() + timeout_s
    last, quiet_since = ml.predict_count(model_id), time.monotonic()
    while time.monotonic() - quiet_since < quiet_s:
        if time.monotonic() >= deadline:
            return False
        time.sleep(poll_s)
        count = ml.predict_count(model_id)
        if count != last:
            last, quiet_since = count, time.monotonic()
    return True


def _deploy_once(ml: MLCommons, model_id: str, timeout_s: float, poll_s: float = 1.0) -> None:
    """Deploy the model, also while another deploy of it is under way.

    The other deploy may be an earlier, killed run's, a concurrent `reranker`
    command's, or ML Commons' own redeploy after a node restart (which the
    model's record does not show). ML Commons fails the later of two deploys
    ("Duplicate deploy model task", or a version conflict on the model's
    record); ours then waits until the model answers, or is sent again once
    the other deploy has ended without deploying it.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            ml.wait_for_task(ml.deploy(model_id), max(1.0, deadline - time.monotonic()))
            return
        except DeployError as err:
            if not any(sign in str(err) for sign in RACED_DEPLOY) or time.monotonic() >= deadline:
                raise
            log.info("deploying %s raced another deploy of it (%s); waiting for that one", model_id, err)
        ml.wait_for_state(model_id, SETTLED_STATES, max(0.0, deadline - time.monotonic()))
        if (ml.get_model(model_id) or {}).get("model_state") == "DEPLOYED" and _answers(ml, model_id):
            return
        time.sleep(poll_s)


def _await_deployed(ml: MLCommons, model_id: str, timeout_s: float, poll_s: float = 1.0) -> None:
    """Wait until ML Commons records the answering model as DEPLOYED.

    Its sync-up job can mark a model DEPLOY_FAILED while the deploy is still
    under way (seen on a freshly started 2.19 node): the model answers, but the
    record says otherwise. One redeploy sets the record right; the pipeline is
    switched only after that.
    """
    deadline = time.monotonic() + timeout_s
    redeployed = False
    while True:
        state = (ml.get_model(model_id) or {}).get("model_state")
        if state == "DEPLOYED":
            return
        if state == "DEPLOY_FAILED" and not redeployed:
            log.info("model %s answers but is recorded as DEPLOY_FAILED; deploying it again", model_id)
            _deploy_once(ml, model_id, max(1.0, deadline - time.monotonic()))
            redeployed = True
            continue
        if time.monotonic() >= deadline:
            raise DeployError(f"model {model_id} answers but ML Commons records it as {state}",
                              "re-run deploy; if it persists see `reranker cluster logs`")
        time.sleep(poll_s)


def _registered_model(ml: MLCommons, artifact: ModelArtifact, cfg: DeployConfig,
                      report: Progress) -> tuple[str, bool]:
    """A fully uploaded model for this zip: reused if the cluster has one, else uploaded now."""
    stale_before_ms = (time.time() - cfg.deploy_timeout_s) * 1000
    same = ml.list_models(content_hash=artifact.sha256)
    for model in same:
        if model.state not in COMPLETE_STATES and (model.updated_ms or 0) < stale_before_ms:
            log.info("deleting half-registered model %s (%s), untouched for over %.0f s", model.model_id,
                     model.state, cfg.deploy_timeout_s)
            ml.delete(model.model_id)
    for model in same:
        if model.state in COMPLETE_STATES and model.name == cfg.model_name:
            log.info("reusing model %s (%s) with the same sha256", model.model_id, model.state)
            return model.model_id, True
    group_id = ml.ensure_model_group(cfg.model_group)
    model_id = ml.register_meta(register_meta_body(artifact, cfg, group_id))
    total = artifact.total_chunks(cfg.chunk_size_bytes)
    try:
        with artifact.path.open("rb") as fh:
            for number in range(total):
                report("upload", number, total)
                ml.upload_chunk(model_id, number, fh.read(cfg.chunk_size_bytes))
        report("upload", total, total)
    except (RerankerError, OSError) as err:
        _rollback(ml, model_id)
        if isinstance(err, OSError):
            raise DeployError(f"reading {artifact.path} failed: {err}", "check the file") from err
        raise
    return model_id, False


def _rollback(ml: MLCommons, model_id: str) -> None:
    try:
        ml.delete(model_id)
        log.info("rolled back model %s", model_id)
    except RerankerError as err:  # keep the original error; say what is left behind
        log.error("could not remove model %s after a failed deploy: %s (re-run deploy to converge)", model_id, err)


def restore_serving(client: OpenSearch, timeout_s: float = 300.0) -> list[str]:
    """Deploy again every model a rerank pipeline uses that does not answer; returns the ids deployed.

    After a node restart ML Commons may still be redeploying (or may never
    redeploy) the models its pipelines point at, and every search through them
    fails with "Model not ready yet" meanwhile. `cluster up` calls this so that
    when it returns, reranked search works again. A model already being
    deployed is waited for rather than deployed twice.
    """
    ml = MLCommons(client)
    restored = []
    for model_id, pipelines in pipelines_by_model(client).items():
        model = ml.get_model(model_id)
        if model is None:
            log.warning("pipeline %s uses model %s, which no longer exists", ", ".join(pipelines), model_id)
            continue
        if model.get("model_state") == "DEPLOYING":
            ml.wait_for_state(model_id, SETTLED_STATES, timeout_s)
        if _answers(ml, model_id):
            continue
        log.info("model %s (pipeline %s) does not answer after the restart; deploying it", model_id,
                 ", ".join(pipelines))
        _deploy_once(ml, model_id, timeout_s)
        if not _answers(ml, model_id):
            raise DeployError(f"model {model_id} (pipeline {', '.join(pipelines)}) was deployed but does not answer",
                              "see `reranker cluster logs`, then `reranker deploy` it again")
        _await_deployed(ml, model_id, timeout_s)
        restored.append(model_id)
    return restored


def _answers(ml: MLCommons, model_id: str) -> bool:
    """True if the model returns a score for a test pair (the record may lag behind after a restart)."""
    try:
        return len(ml.predict(model_id, "test query", ["test document"])) == 1
    except ClusterError:
        return False
