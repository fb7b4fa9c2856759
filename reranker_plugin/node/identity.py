"""Is the cluster at a URL the local node `reranker cluster up` started, or someone's real cluster?

A loopback URL on the configured port is not enough: a docker container, a
tunnel to production or another user's node can answer there. So `cluster up`
records the cluster UUID of the node it started (or found running from its own
pid file) in the node's folder, and a cluster counts as local only when the URL
points at this machine on one of the local node ports and its UUID is the one
recorded. A wiped data folder gets a new UUID, recorded again by the next `up`.
"""
from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from opensearchpy import OpenSearch
from opensearchpy.exceptions import ConnectionError as OSConnectionError
from opensearchpy.exceptions import TransportError

from reranker_core.config import Config
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


def recorded_uuids(config: Config) -> dict[int, str]:
    """Local node port -> the cluster UUID `cluster up` recorded for it (plain and secured node)."""
    from .local import LocalNode

    found: dict[int, str] = {}
    for secure in (False, True):
        node = LocalNode(config.local_node, secure=secure)
        path = node.layout.root / RECORD
        if path.is_file():
            found[node.port] = path.read_text(encoding="utf-8").strip()
    return found


def is_local_cluster(client: OpenSearch, config: Config) -> bool:
    """True only for the node `reranker cluster up` runs: loopback URL, local node port, recorded UUID."""
    url = urlsplit(config.cluster.url)
    if url.hostname not in LOOPBACK:
        return False
    expected = recorded_uuids(config).get(url.port or (443 if url.scheme == "https" else 80))
    if expected is None:
        return False
    try:
        return client.info().get("cluster_uuid") == expected
    except (OSConnectionError, TransportError):
        return False
