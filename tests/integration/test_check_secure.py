"""`reranker check`'s permission probe on the secured node: the deploying role passes, a monitor-only user fails
with the refused action named. Reuses test_secure_cluster's node fixture (started for the module, ~1 min)."""
from __future__ import annotations

import pytest

from reranker_core.config import Config
from reranker_plugin.jobs.check import run_checks

from .test_secure_cluster import cluster_config, secure_node  # noqa: F401  (the module-scoped node fixture)

pytestmark = pytest.mark.integration


def probes_as(node, user: str) -> dict:
    probes = {p.name: p for p in run_checks(Config(cluster=cluster_config(node, user)), "products")}
    print("\n".join(p.line() for p in probes.values()))  # shown with -s: what `reranker check` prints
    return probes


def test_the_deploying_role_passes_every_probe(secure_node):  # noqa: F811
    probes = probes_as(secure_node, "reranker")
    assert all(p.ok for p in probes.values()), [p.line() for p in probes.values() if not p.ok]
    assert "security plugin present" in probes["plugins"].detail
    permissions = probes["permissions"].detail
    assert "user 'reranker' (roles: " in permissions and "reranker_deployer" in permissions


def test_a_user_without_the_role_fails_the_permission_probe_naming_the_action(secure_node):  # noqa: F811
    probes = probes_as(secure_node, "outsider")
    line = probes["permissions"].line()
    assert line.startswith("FAIL") and "user 'outsider'" in line and "reranker_monitor" in line
    assert "no permission for [cluster:admin/opensearch/ml/models/search]" in line
    assert "reranker_deployer role in opensearch/security/roles.yml" in line  # the fix
    assert probes["reachable"].ok and probes["version"].ok
