"""What `reranker run` will change on the cluster, shown and confirmed before it changes anything.

On the local node (`reranker cluster up`'s own: ``node.local.is_local_cluster``)
the main job just runs. On any other cluster it first prints its plan — the index
it creates or writes into, the models it registers, the pipelines it creates
or replaces, the models it undeploys — and stops unless ``--yes`` was given.
On every cluster it refuses to write into an existing index that reranker did
not create (``_meta.created_by``) unless ``--overwrite`` was given. Both
checks only read the cluster, so a refused run has changed nothing.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from opensearchpy import OpenSearch

from reranker_core.config import Config
from reranker_core.errors import UnconfirmedChange
from reranker_core.redact import redact_url

from ..connection import PERMISSION_FIX, PermissionDenied
from ..mlcommons.pipeline import get_pipeline, pipeline_model_id
from ..node.local import is_local_cluster
from .catalog import CREATED_BY, index_bodies, index_owner, legacy_products_mapping
from .check import missing_permissions


@dataclass(frozen=True)
class RunPlan:
    """The cluster changes of one `reranker run`, read from the cluster as it is now."""

    url: str
    local: bool
    index: str
    index_owner: str | None          # None: absent; CREATED_BY: ours; anything else: someone else's
    models: dict[str, str]           # pipeline -> model name registered for it
    pipeline_models: dict[str, str]  # existing pipeline -> the model id it uses now
    default_pipeline: str | None     # the pipeline made the index's default (None: not changed)
    current_default: str | None
    undeploy_previous: bool
    either: tuple[str, ...] = ()     # pipelines of which only one is deployed (--ship auto picks after export)

    @property
    def foreign_index(self) -> bool:
        return self.index_owner not in (None, CREATED_BY)

    def lines(self) -> list[str]:
        """One line per change, in the order the job makes them."""
        if self.index_owner is None:
            out = [f"create index {self.index!r} and index the catalog into it"]
        elif self.foreign_index:
            out = [f"write the catalog into index {self.index!r}, which reranker did not create "
                   f"(documents with the same ids are replaced)"]
        else:
            out = [f"index the catalog into index {self.index!r} (created by reranker; same ids are replaced)"]
        for pipeline, model in self.models.items():
            one_of = " / ".join(repr(self.models[p]) for p in self.either)
            which = f" (only one of {one_of}, picked after export)" if pipeline in self.either else ""
            out.append(f"register and deploy model {model!r} (reused if the same zip is registered){which}")
            used = self.pipeline_models.get(pipeline)
            out.append(f"replace search pipeline {pipeline!r} (now model {used})" if used
                       else f"create search pipeline {pipeline!r}")
            if used and self.undeploy_previous:
                out.append(f"undeploy model {used} once {pipeline!r} serves the new one, unless another "
                           f"pipeline uses it")
        if self.default_pipeline:
            out.append(f"make {self.default_pipeline!r} the default search pipeline of {self.index!r} "
                       f"(now: {self.current_default or 'none'})")
        return out


def plan_run(client: OpenSearch, config: Config, models: dict[str, str], undeploy_previous: bool = True,
             either: tuple[str, ...] = ()) -> RunPlan:
    """Read the cluster: may the user do what the job needs (else PermissionDenied), does the index exist and
    whose is it, which pipelines exist and on which models.

    ``models`` maps each pipeline the job may deploy to the model name it registers behind it; the main job
    undeploys each pipeline's previous model (``undeploy_previous``) whatever deploy.undeploy_previous says.
    ``either``: pipelines of which only one will be deployed.
    """
    deploy = config.deploy
    local = is_local_cluster(client, config)
    index = deploy.index
    refused = missing_permissions(client, index)  # hours of training would end in this refusal at deploy
    if refused:
        raise PermissionDenied(refused[0], PERMISSION_FIX)
    owner = index_owner(client, index)
    if owner == "" and local and legacy_products_mapping(client, index):
        owner = CREATED_BY  # the local node's catalog index from before indices were marked
    used = {name: model for name in models if (model := pipeline_model_id(get_pipeline(client, name)))}
    current = _default_pipeline(client, index) if owner is not None else None
    return RunPlan(redact_url(config.cluster.url), local, index, owner, dict(models), used,
                   deploy.pipeline if deploy.default_pipeline else None, current, undeploy_previous,
                   tuple(either))


def confirm_run(plan: RunPlan, yes: bool, overwrite: bool, say: Callable[[str], None]) -> None:
    """Print the plan where the cluster is not the local node; raise unless the user confirmed what it needs."""
    if not plan.local:
        say(f"{plan.url} is not the local node `reranker cluster up` started; this run will:")
        for line in plan.lines():
            say(f"  - {line}")
    if plan.foreign_index and not overwrite:
        raise UnconfirmedChange(f"index {plan.index!r} on {plan.url} exists and was not created by reranker "
                                f"(no _meta.created_by: {CREATED_BY})",
                                "set deploy.index to a new name, or pass --overwrite to write into it")
    if not plan.local and not yes:
        raise UnconfirmedChange(f"{plan.url} is not the local node: nothing was changed",
                                "read the plan above, then rerun with --yes")


def _default_pipeline(client: OpenSearch, index: str) -> str | None:
    found = {(body.get("settings") or {}).get("index.search.default_pipeline")
             for body in (index_bodies(client, index) or {}).values()}
    found -= {None, "_none"}
    return ", ".join(sorted(found)) or None
