"""The ML Commons front refuses an empty model id before any request (opensearch-py would drop it from the path)."""
from __future__ import annotations

import pytest

from reranker_core.config import ClusterConfig
from reranker_core.errors import RerankerError
from reranker_plugin.connection import make_client
from reranker_plugin.mlcommons.client import MLCommons


@pytest.mark.parametrize("call", ["get_model", "undeploy", "deploy", "delete"])
def test_empty_model_id_is_refused_without_a_request(call):
    ml = MLCommons(make_client(ClusterConfig(url="http://127.0.0.1:9")))  # nothing listens there: no request is made
    with pytest.raises(RerankerError, match="the model id is empty"):
        getattr(ml, call)("")
