"""`reranker cluster …` against the local node assembled from Maven Central."""
from __future__ import annotations

import socket
import time

import pytest
from click.testing import CliRunner

from reranker_core.config import DeployConfig, LocalNodeConfig
from reranker_core.errors import LocalNodeError
from reranker_core.model_zip import validate_zip
from reranker_plugin.cli import cli
from reranker_plugin.connection import make_client
from reranker_plugin.jobs.search import search
from reranker_plugin.mlcommons.deploy import deploy
from reranker_plugin.node.local import LocalNode

from .conftest import create_products_index, model_and_pipeline_names

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def local_node(opensearch, tmp_path_factory):
    """The session's local node, or (when tests use another cluster) one of our own on a spare port."""
    if opensearch.local_node is not None:
        yield opensearch.local_node
        return
    node = LocalNode(LocalNodeConfig(home=str(tmp_path_factory.mktemp("node-home")), port=9250))
    node.up()
    yield node
    node.down()


def test_cluster_up_twice_is_idempotent(local_node):
    port = str(local_node.cfg.port)
    first = CliRunner().invoke(cli, ["cluster", "up", "--port", port], catch_exceptions=False)
    started = time.monotonic()
    second = CliRunner().invoke(cli, ["cluster", "up", "--port", port], catch_exceptions=False)
    assert first.exit_code == 0 and second.exit_code == 0, first.output + second.output
    assert time.monotonic() - started < 10
    pid = local_node.status().pid
    assert f"pid {pid}" in first.output and f"pid {pid}" in second.output
    status = local_node.status()
    assert status.health in ("green", "yellow")
    assert {"opensearch-ml", "opensearch-neural-search", "opensearch-knn"} <= set(status.plugins)


def test_node_keeps_its_temp_files_in_its_home(local_node):
    """Not a fresh /tmp/opensearch-* per start, which nothing removes (ML Commons puts ~380 MB there)."""
    client = make_client(local_node.cluster_config())
    jvm = next(iter(client.nodes.info(metric="jvm")["nodes"].values()))["jvm"]
    assert f"-Djava.io.tmpdir={local_node.layout.tmp}" in jvm["input_arguments"]
    assert local_node.layout.tmp.is_dir()


def test_status_and_logs_commands(local_node, tmp_path):
    config = tmp_path / "reranker.yaml"
    home = local_node.layout.home
    config.write_text(f"local_node: {{home: '{home}', port: {local_node.cfg.port}}}\n")
    status = CliRunner().invoke(cli, ["--config", str(config), "cluster", "status"])
    logs = CliRunner().invoke(cli, ["--config", str(config), "cluster", "logs", "-n", "5"])
    assert status.exit_code == 0 and "opensearch-neural-search" in status.output
    assert "health: green" in status.output or "health: yellow" in status.output
    assert logs.exit_code == 0 and len(logs.output.strip().splitlines()) >= 1


def test_port_taken_by_another_process_is_a_clear_error(local_node):
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen(1)
        port = blocker.getsockname()[1]
        node = LocalNode(LocalNodeConfig(home=local_node.cfg.home, port=port))
        with pytest.raises(LocalNodeError, match=f"port {port} on 127.0.0.1 is taken"):
            node.up()


def test_cluster_up_after_a_restart_serves_reranked_search(local_node, tmp_path, tiny_zip):
    """After a restart ML Commons redeploys a pipeline's model itself; `cluster up` waits for that deploy
    instead of failing on it ("Duplicate deploy model task"), so reranked search works when it returns."""
    client = make_client(local_node.cluster_config())
    index = create_products_index(client)
    names_gen = model_and_pipeline_names(client)
    names = next(names_gen)
    try:
        cfg = DeployConfig(model_name=names["model"], index=index, document_fields=("title",),
                           pipeline=names["pipeline"])
        deploy(client, validate_zip(tiny_zip), cfg)
        config = tmp_path / "reranker.yaml"
        config.write_text(f"local_node: {{home: '{local_node.layout.home}', port: {local_node.cfg.port}}}\n")
        assert local_node.down()
        up = CliRunner().invoke(cli, ["--config", str(config), "cluster", "up"])
        assert up.exit_code == 0, up.output
        reranked = search(client, index, "cordless drill", ("title",), 5, names["pipeline"])  # raises if not ready
        plain = search(client, index, "cordless drill", ("title",), 5, None)
        assert len(reranked) == 5 and [h.score for h in reranked] != [h.score for h in plain]
    finally:
        next(names_gen, None)
        client.indices.delete(index=index, ignore_unavailable=True)
