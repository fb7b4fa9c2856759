"""OpenSearch side of the reranker: local node, model deploy, rerank pipelines, CLI."""
