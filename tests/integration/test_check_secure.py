"""On the secured node: `reranker check`'s permission probe (the deploying role passes, a monitor-only user fails
with the refused action named) and `run`'s plan, read with only the deploying role's permissions. Reuses
test_secure_cluster's fixtures (the node is started for the module, ~1 min)."""
from __future__ import annotations

import pytest

from reranker_core.config import Config, DeployConfig, LocalNodeConfig
from reranker_core.errors import UnconfirmedChange
from reranker_plugin.connection import make_client
from reranker_plugin.jobs.catalog import CREATED_BY
from reranker_plugin.jobs.check import run_checks
from reranker_plugin.jobs.run_plan import confirm_run, plan_run

from .test_secure_cluster import admin, cluster_config, product_index, refused, secure_node  # noqa: F401

pytestmark = pytest.mark.integration


def probes_as(node, user: str, index: str = "products") -> dict:
    probes = {p.name: p for p in run_checks(Config(cluster=cluster_config(node, user)), index)}
    print("\n".join(p.line() for p in probes.values()))  # shown with -s: what `reranker check` prints
    return probes


def test_the_deploying_role_passes_every_probe(secure_node):  # noqa: F811
    probes = probes_as(secure_node, "reranker")
    assert all(p.ok for p in probes.values()), [p.line() for p in probes.values() if not p.ok]
    assert "security plugin present" in probes["plugins"].detail
    permissions = probes["permissions"].detail
    assert "user 'reranker' (roles: " in permissions and "reranker_deployer" in permissions


def test_an_index_outside_the_roles_pattern_fails_even_when_absent(secure_node):  # noqa: F811
    line = probes_as(secure_node, "reranker", index="orders-absent")["permissions"].line()
    assert line.startswith("FAIL") and "GET /orders-absent" in line and "reranker_deployer role" in line
    assert "no permission for [indices:admin/get]" in line


def test_a_user_without_the_role_fails_the_permission_probe_naming_the_action(secure_node):  # noqa: F811
    probes = probes_as(secure_node, "outsider")
    line = probes["permissions"].line()
    assert line.startswith("FAIL") and "user 'outsider'" in line and "reranker_monitor" in line
    assert "no permission for [cluster:admin/opensearch/ml/models/search]" in line
    assert "reranker_deployer role in opensearch/security/roles.yml" in line  # the fix
    assert probes["reachable"].ok and probes["version"].ok


def test_the_deploying_role_may_read_everything_the_run_plan_reads(secure_node, product_index, tmp_path):  # noqa: F811
    config = Config(cluster=cluster_config(secure_node, "reranker"), local_node=LocalNodeConfig(home=str(tmp_path)),
                    deploy=DeployConfig(index=product_index, pipeline="plan-only", model_name="plan-only",
                                        default_pipeline=True))
    plan = plan_run(make_client(config.cluster), config, {"plan-only": "plan-only"})
    assert not plan.local and plan.index_owner == CREATED_BY and plan.current_default is None
    said: list[str] = []
    with pytest.raises(UnconfirmedChange, match="rerun with --yes"):
        confirm_run(plan, yes=False, overwrite=False, say=said.append)
    assert f"  - index the catalog into index {product_index!r} (created by reranker; same ids are replaced)" in said


def test_a_run_plan_for_a_user_without_the_role_stops_before_any_work(secure_node, tmp_path):  # noqa: F811
    config = Config(cluster=cluster_config(secure_node, "outsider"), local_node=LocalNodeConfig(home=str(tmp_path)))
    line = refused(plan_run, make_client(config.cluster), config, {"rerank": "reranker-student"})
    assert "no permission for [cluster:admin/opensearch/ml/models/search]" in line
