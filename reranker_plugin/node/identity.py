"""Is the cluster at a URL the local node `reranker cluster up` started, or someone's real cluster?

A loopback URL on the configured port is not enough: a docker container, a
tunnel to production or another user's node can answer there. So `cluster up`
records the cluster UUID of the node it started (or found running from its own
pid file) in the node's folder, and a cluster counts as local only when the URL
points at this machine on one of the local node ports and its UUID is the one
recorded. A wiped data folder gets a new UUID, recorded again by the next `up`.
The check itself, :func:`reranker_plugin.node.local.is_local_cluster`, lives
beside the node it looks for.
"""
from __future__ import annotations

from pathlib import Path

from reranker_core.files import atomic_write

RECORD = "cluster-uuid"
LOOPBACK = ("127.0.0.1", "localhost", "::1")
UNKNOWN_UUID = "_na_"  # what a node answers before its cluster state is recovered


def record_cluster_uuid(node_root: Path, cluster_uuid: str) -> None:
    """Remember ``cluster_uuid`` as the local node's (``node_root``: the node's folder under local_node.home)."""
    if not cluster_uuid or cluster_uuid == UNKNOWN_UUID:
        return
    node_root.mkdir(parents=True, exist_ok=True)
    path = node_root / RECORD
    if not path.is_file() or path.read_text(encoding="utf-8").strip() != cluster_uuid:
        atomic_write(path, lambda tmp: tmp.write_text(cluster_uuid + "\n", encoding="utf-8"))
