"""Is the cluster at cluster.url the node `reranker cluster up` started? Decided by the recorded cluster UUID.

The real 9200 node is made to look non-local without touching it: the config
points local_node.home at an empty folder, so no UUID is recorded there.
"""
from __future__ import annotations

import pytest

from reranker_core.config import ClusterConfig, Config, LocalNodeConfig
from reranker_plugin.node.identity import RECORD, record_cluster_uuid
from reranker_plugin.node.local import is_local_cluster
from reranker_plugin.node.local import LocalNode

pytestmark = pytest.mark.integration


def config_for(url: str, home, port: int = 9200) -> Config:
    return Config(cluster=ClusterConfig(url=url), local_node=LocalNodeConfig(home=str(home), port=port))


def test_without_a_recorded_uuid_the_node_is_not_local(opensearch, client, tmp_path):
    assert not is_local_cluster(client, config_for(opensearch.url, tmp_path))


def test_the_recorded_uuid_makes_it_local_and_another_uuid_does_not(opensearch, client, tmp_path):
    config = config_for(opensearch.url, tmp_path)
    root = LocalNode(config.local_node).layout.root
    record_cluster_uuid(root, client.info()["cluster_uuid"])
    assert (root / RECORD).is_file()
    assert is_local_cluster(client, config)
    record_cluster_uuid(root, "someone-elses-cluster")  # e.g. the data folder was wiped, or another node answers
    assert not is_local_cluster(client, config)


def test_a_recorded_uuid_for_another_port_does_not_count(opensearch, client, tmp_path):
    config = config_for(opensearch.url, tmp_path, port=9300)  # cluster.url says 9200; the local node is on 9300
    record_cluster_uuid(LocalNode(config.local_node).layout.root, client.info()["cluster_uuid"])
    assert not is_local_cluster(client, config)


def test_an_unknown_uuid_is_never_recorded(tmp_path):
    record_cluster_uuid(tmp_path, "_na_")  # what a node says before its cluster state is recovered
    assert not (tmp_path / RECORD).exists()


def test_cluster_up_on_the_running_node_records_its_uuid(client):
    """`up` on a node already running (from its own pid file) only reapplies settings and records the UUID."""
    node = LocalNode(LocalNodeConfig())
    assert node.status().running, "the test node is the local node started by `reranker cluster up`"
    node.up()
    assert (node.layout.root / RECORD).read_text(encoding="utf-8").strip() == client.info()["cluster_uuid"]
    assert is_local_cluster(client, Config())
