"""Managing what serves: models and search pipelines, with the rules that keep live searches working.

A model behind a pipeline is not undeployed or deleted, and an index's default pipeline is not deleted, unless
``force``: every search through it would fail. The `reranker models` / `pipeline` verbs print what these return.
"""
from __future__ import annotations

from dataclasses import dataclass

from opensearchpy import OpenSearch

from reranker_core.errors import RerankerError

from ..mlcommons.client import MLCommons, ModelInfo
from ..mlcommons.pipeline import (clear_default_pipeline, default_pipeline_indices, delete_pipeline, get_pipeline,
                                  list_pipelines, pipeline_model_id, pipelines_by_model)


@dataclass(frozen=True)
class ServedModel:
    """A registered model and the search pipelines that rerank with it."""

    model: ModelInfo
    pipelines: list[str]


@dataclass(frozen=True)
class PipelineUse:
    """A search pipeline, the model it reranks with (None: no rerank processor) and the indices whose default it is."""

    name: str
    model_id: str | None
    default_of: list[str]


def served_models(client: OpenSearch) -> list[ServedModel]:
    """Registered models, newest first, each with the pipelines that use it."""
    used_by = pipelines_by_model(client)
    return [ServedModel(m, used_by.get(m.model_id, [])) for m in MLCommons(client).list_models()]


def undeploy_model(client: OpenSearch, model_id: str, force: bool = False) -> None:
    """Free the model's memory on the nodes (it stays registered); refused while a pipeline uses it."""
    _refuse_if_serving(client, model_id, force, "undeploy")
    MLCommons(client).undeploy(model_id)


def delete_model(client: OpenSearch, model_id: str, force: bool = False) -> None:
    """Undeploy (if needed) and delete the model with its chunks; refused while a pipeline uses it."""
    ml = MLCommons(client)
    if ml.get_model(model_id) is None:
        raise RerankerError(f"model {model_id} does not exist", "see `reranker models list`")
    _refuse_if_serving(client, model_id, force, "delete")
    ml.delete(model_id)


def pipeline_uses(client: OpenSearch) -> list[PipelineUse]:
    """Every search pipeline with its model and the indices that search through it by default."""
    defaults = default_pipeline_indices(client)
    return [PipelineUse(name, pipeline_model_id(body), defaults.get(name, []))
            for name, body in list_pipelines(client).items()]


def delete_search_pipeline(client: OpenSearch, name: str, force: bool = False) -> list[str]:
    """Delete pipeline ``name`` (its model stays deployed). Refused when it is an index's default pipeline unless
    ``force``, which removes that setting first; returns the indices it was removed from."""
    if get_pipeline(client, name) is None:
        raise RerankerError(f"search pipeline {name!r} does not exist", "see `reranker pipeline list`")
    indices = default_pipeline_indices(client).get(name, [])
    if indices and not force:
        raise RerankerError(f"search pipeline {name!r} is the default pipeline of {', '.join(indices)}",
                            "deploy another pipeline as the default first, or pass --force to remove the setting too")
    for index in indices:
        clear_default_pipeline(client, index)
    delete_pipeline(client, name)
    return indices


def _refuse_if_serving(client: OpenSearch, model_id: str, force: bool, verb: str) -> None:
    users = pipelines_by_model(client).get(model_id, [])
    if users and not force:
        raise RerankerError(f"model {model_id} serves search pipeline(s) {', '.join(users)}: {verb} refused",
                            "deploy another model behind them first, or pass --force")
