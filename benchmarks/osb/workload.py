"""opensearch-benchmark parameter source: held-out queries, through BM25 alone or a rerank search pipeline.

OSB loads this file itself (``--workload-path``); it sees none of our packages,
only the queries file that benchmarks/concurrency.py writes.
"""
import json


class HeldOutQueries:
    """Cycles through the queries file; each client starts at its own offset so clients do not move in lockstep."""

    def __init__(self, workload, params, **kwargs):
        with open(params["queries-file"], encoding="utf-8") as fh:
            self._queries = json.load(fh)
        if not self._queries:
            raise ValueError(f"{params['queries-file']} holds no queries")
        self._index = params["index"]
        self._fields = list(params["fields"])
        self._size = int(params["size"])
        self._pipeline = params.get("pipeline")
        self._next = 0
        self.infinite = True

    def partition(self, partition_index, total_partitions):
        self._next = partition_index * len(self._queries) // max(1, total_partitions)
        return self

    def params(self):
        query = self._queries[self._next % len(self._queries)]
        self._next += 1
        body = {"size": self._size, "query": {"multi_match": {"query": query, "fields": self._fields}}}
        if self._pipeline:
            body["ext"] = {"rerank": {"query_context": {"query_text": query}}}
        return {"index": self._index, "body": body, "cache": False,
                "request-params": {"search_pipeline": self._pipeline or "_none"}}


def register(registry):
    registry.register_param_source("reranker-queries", HeldOutQueries)
