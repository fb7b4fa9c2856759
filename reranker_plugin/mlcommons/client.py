"""A thin front over ML Commons (model groups, models, chunks, tasks), on opensearch-py's ``client.plugins.ml``.

One ``wait_for_task`` serves all polling; every refusal by the cluster becomes a
:class:`ClusterError` carrying the cluster's own reason and naming the REST call.
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from opensearchpy import OpenSearch
from opensearchpy.exceptions import ConnectionError as OSConnectionError
from opensearchpy.exceptions import NotFoundError, TransportError

from reranker_core.errors import ClusterError, DeployError, RerankerError

from ..connection import MODEL_ACCESS_FIX, MODEL_ACCESS_SIGNS

ML = "/_plugins/_ml"  # names the REST call in error messages
TERMINAL_TASK_STATES = {"COMPLETED", "FAILED", "COMPLETED_WITH_ERROR", "CANCELLED"}
#: Model states in which every chunk is stored, so the model can be deployed again.
COMPLETE_STATES = {"REGISTERED", "DEPLOYED", "DEPLOYING", "UNDEPLOYED", "DEPLOY_FAILED", "PARTIALLY_DEPLOYED"}


@dataclass(frozen=True)
class ModelInfo:
    """One registered model as listed by `reranker models list`."""

    model_id: str
    name: str
    version: str
    state: str
    function_name: str
    content_hash: str | None
    group_id: str | None
    size_bytes: int | None = None
    precision: str | None = None       # recorded at registration by `reranker deploy`; None for others
    layers: int | None = None
    updated_ms: int | None = None      # last change to the record (epoch ms): an upload in progress is recent


def _require_id(model_id: str) -> str:
    """The id, or an error: opensearch-py leaves an empty id out of the path, and ``POST models/_undeploy``
    without one undeploys every model."""
    if not model_id:
        raise RerankerError("the model id is empty", "pass an id from `reranker models list`")
    return model_id


def _all_config(source: dict[str, Any]) -> dict[str, Any]:
    """The model's ``model_config.all_config`` JSON (any model may lack it or hold something else)."""
    try:
        found = json.loads((source.get("model_config") or {}).get("all_config") or "{}")
    except (TypeError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def _reason(err: TransportError) -> str:
    if isinstance(err, OSConnectionError):
        return f"the connection was lost ({type(err).__name__})"
    info = err.info if isinstance(err.info, dict) else {}
    error = info.get("error", info)
    if isinstance(error, dict):
        return str(error.get("reason") or error.get("root_cause") or error)[:300]
    return str(error or err)[:300]


class MLCommons:
    """Calls used to register, deploy, list and remove cross-encoder models."""

    def __init__(self, client: OpenSearch) -> None:
        self.client = client
        self.ml = client.plugins.ml

    def _call(self, method: str, path: str, request: Callable[..., Any], **kwargs: Any) -> Any:
        """``request(**kwargs)``, one ``client.plugins.ml`` method; ``method path`` names it if the cluster refuses."""
        try:
            return request(**kwargs)
        except OSConnectionError as err:  # the node went away mid-call
            raise ClusterError(f"lost OpenSearch during {method} {path} ({type(err).__name__})",
                               "check that it is up (`reranker cluster status`), then rerun: "
                               "what was half done is resumed or removed") from err
        except TransportError as err:  # ML Commons refuses another user's model group with a 400
            reason = _reason(err)
            fix = (MODEL_ACCESS_FIX if any(sign in reason for sign in MODEL_ACCESS_SIGNS)
                   else "check `reranker cluster logs` or the cluster's logs")
            raise ClusterError(f"{method} {path} failed: {reason}", fix) from err

    # ---------------------------------------------------------- model groups
    def ensure_model_group(self, name: str) -> str:
        """Id of the model group ``name``, creating it on first use."""
        hits = self._call("POST", f"{ML}/model_groups/_search", self.ml.search_model_group,
                          body={"query": {"term": {"name.keyword": name}}, "size": 1})["hits"]["hits"]
        if hits:
            return hits[0]["_id"]
        body = {"name": name, "description": "Cross-encoder rerankers deployed by opensearch-reranker"}
        try:
            return self._call("POST", f"{ML}/model_groups/_register", self.ml.register_model_group,
                              body=body)["model_group_id"]
        except ClusterError as err:  # with model access control on, another user's group is not found above
            if "already being used by a model group" not in err.message:
                raise
            raise ClusterError(f"model group {name!r} exists but this user may not see it (ML Commons model access "
                               "control: it belongs to another user)",
                               "deploy with --group NAME of your own (deploy.model_group)") from err

    # ---------------------------------------------------------------- models
    def list_models(self, content_hash: str | None = None, size: int = 1000) -> list[ModelInfo]:
        """Registered models (chunk documents excluded), newest first."""
        query: dict[str, Any] = {"bool": {"must_not": [{"exists": {"field": "chunk_number"}}]}}
        if content_hash:
            query["bool"]["filter"] = [{"term": {"model_content_hash_value": content_hash}}]
        try:
            result = self.ml.search_models(
                body={"query": query, "size": size, "sort": [{"created_time": {"order": "desc"}}]})
        except NotFoundError:  # no model was ever registered: the index does not exist yet
            return []
        except TransportError as err:
            raise ClusterError(f"listing models failed: {_reason(err)}", "check the cluster's logs") from err
        models = []
        for hit in result["hits"]["hits"]:
            src = hit["_source"]
            hf_config = _all_config(src)
            models.append(ModelInfo(hit["_id"], src.get("name", ""), str(src.get("model_version", "")),
                                    src.get("model_state", "UNKNOWN"), src.get("algorithm", ""),
                                    src.get("model_content_hash_value"), src.get("model_group_id"),
                                    src.get("model_content_size_in_bytes"), hf_config.get("precision"),
                                    hf_config.get("num_hidden_layers"),
                                    max((int(src[k]) for k in ("created_time", "last_updated_time")
                                         if isinstance(src.get(k), (int, float))), default=None)))
        return models

    def get_model(self, model_id: str) -> dict[str, Any] | None:
        try:
            return self.ml.get_model(model_id=_require_id(model_id))
        except NotFoundError:
            return None
        except TransportError as err:
            raise ClusterError(f"reading model {model_id} failed: {_reason(err)}", "check the cluster") from err

    def register_meta(self, meta: dict[str, Any]) -> str:
        return self._call("POST", f"{ML}/models/_register_meta", self.ml.register_model_meta, body=meta)["model_id"]

    def upload_chunk(self, model_id: str, number: int, data: bytes) -> None:
        self._call("POST", f"{ML}/models/{model_id}/upload_chunk/{number}", self.ml.upload_chunk,
                   model_id=_require_id(model_id), chunk_number=number, body=data)

    def deploy(self, model_id: str) -> str:
        return self._call("POST", f"{ML}/models/{model_id}/_deploy", self.ml.deploy_model,
                          model_id=_require_id(model_id))["task_id"]

    def undeploy(self, model_id: str) -> None:
        self._call("POST", f"{ML}/models/{model_id}/_undeploy", self.ml.undeploy_model,
                   model_id=_require_id(model_id))

    def delete(self, model_id: str, timeout_s: float = 120.0) -> None:
        """Undeploy if needed, then delete the model and its chunks.

        A model still DEPLOYING cannot be undeployed or deleted, so wait for its
        deployment to end first (this happens when rolling back a timed-out deploy).
        """
        deadline = time.monotonic() + timeout_s
        while True:
            model = self.get_model(model_id)
            if model is None:
                return
            state = model.get("model_state")
            if state in ("DEPLOYED", "PARTIALLY_DEPLOYED"):
                self.undeploy(model_id)
                self.wait_for_state(model_id, {"UNDEPLOYED", "REGISTERED", "DEPLOY_FAILED"},
                                    max(0.0, deadline - time.monotonic()))
            elif state != "DEPLOYING":
                try:
                    self._call("DELETE", f"{ML}/models/{model_id}", self.ml.delete_model, model_id=model_id)
                    return
                except ClusterError:
                    if time.monotonic() > deadline:
                        raise
            if time.monotonic() > deadline:
                raise ClusterError(f"model {model_id} is still {state} after {timeout_s:.0f}s",
                                   f"retry `reranker models delete -- {model_id}` later")
            time.sleep(0.5)

    def predict_count(self, model_id: str) -> int | None:
        """Predictions of the model begun on all nodes (ML Commons' stats); None where the stats are refused."""
        try:
            stats = self._call("GET", f"{ML}/stats", self.ml.get_stats)
        except ClusterError:
            return None
        nodes = (stats.get("nodes") or {}).values() if isinstance(stats, dict) else ()
        return sum(int(((node.get("models") or {}).get(model_id) or {}).get("predict", {}).get("ml_action_request_count", 0))
                   for node in nodes)

    def predict(self, model_id: str, query: str, docs: list[str]) -> list[float]:
        """Raw logits from the deployed model, one per document."""
        result = self._call("POST", f"{ML}/models/{model_id}/_predict", self.ml.predict_model,
                            model_id=_require_id(model_id), body={"query_text": query, "text_docs": docs})
        return [float(r["output"][0]["data"][0]) for r in result["inference_results"]]

    # ----------------------------------------------------------------- tasks
    def wait_for_task(self, task_id: str, timeout_s: float,
                      on_poll: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
        """Poll a task until it ends; raise :class:`DeployError` on failure or timeout."""
        deadline = time.monotonic() + timeout_s
        delay = 0.25
        while True:
            task = self._call("GET", f"{ML}/tasks/{task_id}", self.ml.get_task, task_id=task_id)
            if on_poll:
                on_poll(task)
            state = task.get("state")
            if state == "COMPLETED":
                return task
            if state in TERMINAL_TASK_STATES:
                raise DeployError(f"ML Commons task {task_id} ended {state}: {task.get('error', 'no error given')}",
                                  "see `reranker cluster logs` for the cause")
            if time.monotonic() > deadline:
                raise DeployError(f"ML Commons task {task_id} still {state} after {timeout_s:.0f}s",
                                  "raise deploy.deploy_timeout_s or check the node's load")
            time.sleep(delay)
            delay = min(delay * 2, 2.0)

    def wait_for_state(self, model_id: str, states: set[str], timeout_s: float) -> None:
        """Poll until the model is in one of ``states`` (or gone, or the time is up)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            model = self.get_model(model_id)
            if model is None or model.get("model_state") in states:
                return
            time.sleep(0.5)
