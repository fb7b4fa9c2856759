"""Least privilege on the secured node: the restricted role (`reranker_deployer`, exact ML Commons actions, model
access control on) manages its own models, and is refused, in one line, everything else it must not do: delete
or create other indices, change cluster settings, read ML Commons' system index, read, register into or delete
from another user's model group, or call ML Commons actions outside its list. Reuses test_secure_cluster's
fixtures (the node is started for the module, ~1 min)."""
from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from reranker_core.config import Config
from reranker_core.errors import ClusterError
from reranker_plugin.connection import make_client
from reranker_plugin.jobs.check import run_checks
from reranker_plugin.mlcommons.client import MLCommons
from reranker_plugin.mlcommons.pipeline import get_pipeline, pipeline_model_id

from .faults import record
from .test_secure_cluster import (admin, cli, cli_refused, cluster_config, deploy_args, env_for,  # noqa: F401
                                  names, product_index, refused, secure_node)

pytestmark = pytest.mark.integration
ACCESS = "plugins.ml_commons.model_access_control_enabled"


@pytest.fixture(scope="module")
def user(secure_node):  # noqa: F811
    return make_client(cluster_config(secure_node, "reranker"))


@pytest.fixture(scope="module")
def admins_model(admin) -> Iterator[tuple[str, str]]:  # noqa: F811
    """(model group id, model id): a private model group admin registered, holding a model (meta only)."""
    suffix = uuid.uuid4().hex[:8]
    group = admin.plugins.ml.register_model_group(
        body={"name": f"admin-private-{suffix}", "access_mode": "private"})["model_group_id"]
    model = admin.plugins.ml.register_model_meta(body=meta_body(group, f"admin-model-{suffix}"))["model_id"]
    yield group, model
    MLCommons(admin).delete(model)
    admin.plugins.ml.delete_model_group(model_group_id=group)


def meta_body(group_id: str, name: str) -> dict:
    return {"name": name, "version": "1", "function_name": "TEXT_SIMILARITY", "model_format": "ONNX",
            "model_group_id": group_id, "model_content_size_in_bytes": 10, "model_content_hash_value": "0" * 64,
            "total_chunks": 1, "model_config": {"model_type": "bert", "embedding_dimension": 1,
                                                "framework_type": "huggingface_transformers"}}


def test_the_node_runs_with_model_access_control_on(admin):  # noqa: F811
    assert admin.cluster.get_settings(flat_settings=True)["persistent"][ACCESS] == "true"


def test_restricted_user_deploys_then_undeploys_and_deletes_its_own_model(secure_node, admin, product_index,  # noqa: F811
                                                                        names, tiny_zip):
    env = env_for(secure_node, "reranker")
    assert (done := cli(env, *deploy_args(tiny_zip, product_index, names))).returncode == 0, done.stderr
    user = make_client(cluster_config(secure_node, "reranker"))
    model_id = pipeline_model_id(get_pipeline(user, names["pipeline"]))
    group = MLCommons(user).get_model(model_id)["model_group_id"]
    assert user.plugins.ml.search_model_group(body={"query": {"ids": {"values": [group]}}})["hits"]["total"]["value"] == 1
    user.search_pipeline.delete(id=names["pipeline"])  # its own pipeline first: the model then serves nothing
    deleted = cli(env, "models", "delete", "--", model_id)
    assert deleted.returncode == 0, deleted.stderr
    assert MLCommons(admin).get_model(model_id) is None


def test_cannot_delete_another_index(secure_node, admin, user):  # noqa: F811
    other = f"orders-{uuid.uuid4().hex[:8]}"
    admin.index(index=other, body={"customer": "someone"}, refresh=True)
    try:
        line = refused(user.indices.delete, index=other)
        assert f"DELETE /{other} for user 'reranker': no permission for [indices:admin/delete]" in line
        assert admin.indices.exists(index=other)
    finally:
        admin.indices.delete(index=other, ignore_unavailable=True)
    record("delete index (restricted user)", "an index outside products*", line, "index kept")


def test_cannot_create_an_index_outside_products(admin, user):  # noqa: F811
    other = f"orders-{uuid.uuid4().hex[:8]}"
    line = refused(user.indices.create, index=other)
    assert "no permission for [indices:admin/create]" in line and not admin.indices.exists(index=other)
    record("create index (restricted user)", "an index outside products*", line, "no index created")


def test_cannot_change_cluster_settings(admin, user):  # noqa: F811
    line = refused(user.cluster.put_settings, body={"persistent": {ACCESS: False}})
    assert "PUT /_cluster/settings for user 'reranker': no permission for [cluster:admin/settings/update]" in line
    assert admin.cluster.get_settings(flat_settings=True)["persistent"][ACCESS] == "true"
    record("PUT _cluster/settings (restricted user)", "turn model access control off", line, "setting unchanged")


def test_cannot_read_ml_commons_system_index(admins_model, user):
    _, model = admins_model
    line = refused(user.get, index=".plugins-ml-model", id=model)
    assert "no permission for [indices:data/read/get]" in line


def test_cannot_read_another_users_model_or_model_group(admins_model, user):
    group, model = admins_model
    line = refused(user.plugins.ml.get_model, model_id=model)
    assert f"GET /_plugins/_ml/models/{model} for this user: User doesn't have privilege" in line
    assert "model access control" in line  # the fix: no role grants this
    found = user.plugins.ml.search_model_group(body={"query": {"ids": {"values": [group]}}})
    assert found["hits"]["total"]["value"] == 0  # not even listed
    assert model not in {m.model_id for m in MLCommons(user).list_models()}
    group_line = refused(user.plugins.ml.get_model_group, model_group_id=group)
    assert "no permission for [cluster:admin/opensearch/ml/model_groups/get]" in group_line
    record("read a model (restricted user)", "another user's private model group", line, "nothing read")


def test_cannot_register_into_another_users_model_group(admins_model, admin, user):
    group, _ = admins_model
    name = f"intruder-{uuid.uuid4().hex[:8]}"
    with pytest.raises(ClusterError) as caught:  # ML Commons' refusal: a 400, not the security plugin's 403
        MLCommons(user).register_meta(meta_body(group, name))
    line = str(caught.value)
    print(line)
    assert line.startswith("POST /_plugins/_ml/models/_register_meta failed: You don't have permissions")
    assert "model access control" in line and "\n" not in line
    assert name not in {m.name for m in MLCommons(admin).list_models()}
    record("register a model (restricted user)", "into another user's private model group", line,
           "no model registered")


def test_cannot_deploy_into_another_users_model_group_by_name(secure_node, admins_model, admin, product_index,  # noqa: F811
                                                              names, tiny_zip):
    group, _ = admins_model
    taken = admin.plugins.ml.get_model_group(model_group_id=group)["name"]
    line = cli_refused(env_for(secure_node, "reranker"), *deploy_args(tiny_zip, product_index, names), "--group", taken)
    assert line == (f"error: model group {taken!r} exists but this user may not see it (ML Commons model access "
                    "control: it belongs to another user) — deploy with --group NAME of your own (deploy.model_group)")
    assert not [m for m in MLCommons(admin).list_models() if m.name == names["model"]]
    record("deploy (restricted user)", "--group names another user's private model group", line,
           "no model registered")


def test_cannot_delete_another_users_model(secure_node, admins_model, admin):  # noqa: F811
    _, model = admins_model
    line = cli_refused(env_for(secure_node, "reranker"), "models", "delete", "--", model, timeout=120)
    assert line.startswith("error: OpenSearch refused")
    assert "User doesn't have privilege" in line and "model access control" in line
    assert MLCommons(admin).get_model(model) is not None
    record("models delete (restricted user)", "a model in another user's private group", line, "model kept")


def test_cannot_delete_another_users_model_group(admins_model, admin, user):
    group, _ = admins_model
    line = refused(user.plugins.ml.delete_model_group, model_group_id=group)
    assert "no permission for [cluster:admin/opensearch/ml/model_groups/delete]" in line
    assert admin.plugins.ml.get_model_group(model_group_id=group)["name"].startswith("admin-private-")


def test_cannot_call_ml_commons_actions_outside_the_role(user):
    line = refused(user.plugins.ml.search_connectors, body={"query": {"match_all": {}}})
    assert "no permission for [cluster:admin/opensearch/ml/connectors/search]" in line


def test_check_on_the_secured_node_warns_of_the_breakers_but_not_of_access_control(secure_node):  # noqa: F811
    probes = run_checks(Config(cluster=cluster_config(secure_node, "reranker")), "products")
    warns = [p.line() for p in probes if p.warn]
    assert all(p.ok for p in probes), [p.line() for p in probes if not p.ok]
    assert any("native_memory_threshold is 100" in line and "set it to 90" in line for line in warns), warns
    assert not any(ACCESS in line for line in warns)
