"""What a run without judgments can still measure: how closely each served ranking follows the teacher.

With no judged test split there is no NDCG. The queries of the log that augmentation held out (validation and
test by query hash) are still unseen by the student, so on each one's BM25 top-K through the cluster we compare
the order of each system (BM25 alone, the rerank pipelines) with the teacher's order of the same hits: pairwise
agreement (share of the pairs the teacher orders that the system orders the same way, a tie counting half) and
Kendall's tau (2 x agreement - 1 over those pairs), with 95% bootstrap intervals over queries. It says how well
the student learned its teacher, not how good the teacher is.
"""
from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

from opensearchpy import OpenSearch

from reranker_core.config import Config
from reranker_core.files import write_json_atomic
from reranker_core.output import QUIET, Output

NOT_MEASURED = ("no judgments: NDCG, MRR and the comparison with BM25 on human labels cannot be measured (no "
                "judged test split); measured instead: agreement with the teacher on held-out logged queries")


def held_out_queries(logs: Sequence[Path], config: Config) -> list[str]:
    """Distinct logged queries of the validation and test splits (augmentation never mined them), most frequent
    first, at most evaluate.max_queries."""
    from training.datasets import split_of
    from training.querylog import QueryCounter, iter_log_file

    counter = QueryCounter()
    for path in logs:
        for line in iter_log_file(Path(path), config.augment.query_field):
            if line.query is not None:
                counter.add(line.query)
    held = [counter.raw(q) for q, _ in counter.items()
            if split_of(q, config.data.split_fractions, config.data.split_salt) != "train"]
    return held[:config.evaluate.max_queries] if config.evaluate.max_queries else held


def teacher_agreement(config: Config, client: OpenSearch, teacher_dir: Path, logs: Sequence[Path],
                      pipelines: Sequence[str], out: Output = QUIET) -> dict:
    """Each system's agreement with the teacher on the held-out logged queries' BM25 top-K (augment.top_k);
    writes evaluate.output and returns what it holds."""
    from rich.table import Table

    from training.bootstrap import intervals, per_query
    from training.ensemble import load_teacher

    from .evaluate import BM25, rank_through_cluster
    from .search import search

    out.say(NOT_MEASURED)
    fields, index = config.template.fields, config.deploy.index
    hits = {q: search(client, index, q, fields, config.augment.top_k, None) for q in held_out_queries(logs, config)}
    hits = {q: h for q, h in hits.items() if len(h) > 1}  # one hit has no order
    result: dict = {"title": f"agreement with the teacher on {len(hits)} held-out logged queries' BM25 "
                             f"top-{config.augment.top_k}", "not_measured": NOT_MEASURED, "queries": len(hits),
                    "teacher": str(teacher_dir), "systems": {}}
    if not hits:
        out.say("no held-out query of the log has two or more hits: agreement not measured either (log more "
                "queries)")
    else:
        teacher = load_teacher(teacher_dir)
        pairs = [(q, h.text) for q, found in hits.items() for h in found]
        with out.progress("teacher scoring held-out hits", "pairs") as update:
            scores = iter(teacher.score(pairs, config.teacher.score_batch_size, update))
        lists = {q: {h.doc_id: next(scores) for h in found} for q, found in hits.items()}
        with out.progress("searching", "queries") as update:
            ranked = rank_through_cluster(client, index, lists, fields, [None, *pipelines], progress=update)
        table = Table("system", "pairwise agreement", "Kendall tau",
                      title=f"{result['title']} (95% bootstrap interval)")
        for name, found_lists in ranked.items():
            with warnings.catch_warnings():  # NDCG and MRR read teacher logits as gains: undefined, and unused
                warnings.simplefilter("ignore", RuntimeWarning)
                value, low, high = intervals(per_query(found_lists))["pairwise_accuracy"]
            result["systems"][name] = {"pairwise_agreement": [value, low, high],
                                       "kendall_tau": [2 * value - 1, 2 * low - 1, 2 * high - 1]}
            table.add_row(name if name != BM25 else "bm25 (no reranking)", f"{value:.4f} [{low:.3f}, {high:.3f}]",
                          f"{2 * value - 1:+.4f} [{2 * low - 1:+.3f}, {2 * high - 1:+.3f}]")
        out.say(table)
    path = Path(config.evaluate.output)
    write_json_atomic(path, result, allow_nan=False)
    out.say(f"wrote {path}")
    return result
