"""Checks on the integration tests' own data and failure paths that need no cluster, so they run as unit tests.

The data checks guard the integration suite's assumptions (which split a query
falls in); they used to run only where a node was up.
"""
from __future__ import annotations

import pytest

from reranker_core.config import ClusterConfig
from reranker_core.errors import ClusterError
from reranker_core.template import ProductTemplate
from reranker_plugin.connection import make_client
from reranker_plugin.jobs.catalog import index_catalog
from training.datasets import split_of

from .integration.test_augment import HELD_OUT, TRAIN
from .integration.test_cli_jobs import OTHER_LISTS, TEST_LISTS


def test_augment_query_splits_are_what_its_tests_assume():
    assert {q: split_of(q) for q in TRAIN} == dict.fromkeys(TRAIN, "train")
    assert {q: split_of(q) for q in HELD_OUT} == HELD_OUT


def test_evaluate_lists_fall_in_the_splits_its_tests_assume():
    assert {split_of(q) for q in TEST_LISTS} == {"test"}
    assert {q: split_of(q) for q in OTHER_LISTS} == {"white paint": "train", "pipe wrench": "train",
                                                     "cordless drill": "validation"}


def test_indexing_into_an_unreachable_cluster_is_a_cluster_error():
    closed = make_client(ClusterConfig(url="http://127.0.0.1:9", timeout_s=2.0))
    with pytest.raises(ClusterError, match="cannot reach OpenSearch"):
        index_catalog(closed, "products-unreachable", [("p0", {"title": "cordless drill"})], ProductTemplate())
