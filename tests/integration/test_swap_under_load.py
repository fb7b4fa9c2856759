"""Zero-downtime model swap: 20 concurrent search clients keep searching while a new model is deployed."""
from __future__ import annotations

import threading
import time

import pytest

from reranker_core.config import ClusterConfig, DeployConfig
from reranker_core.model_zip import validate_zip
from reranker_plugin.connection import connect
from reranker_plugin.jobs.search import search
from reranker_plugin.mlcommons.client import MLCommons
from reranker_plugin.mlcommons.deploy import deploy
from training.export import export_cross_encoder
from training.onnx_scorer import OnnxZipScorer

from ..conftest import tiny_cross_encoder
from .faults import record

pytestmark = pytest.mark.integration

CLIENTS = 20
QUERIES = ("cordless drill", "white paint", "pipe", "garden hose", "light bulb")
AFTER_SWAP_S = 2.0  # keep the load on this long after the pipeline switched


@pytest.mark.parametrize("undeploy_previous", [False, True], ids=["keep-old", "undeploy-old"])
def test_deploy_and_pipeline_switch_under_20_clients_fail_no_search(opensearch, client, products_index,
                                                                    unique_names, tiny_zip, minilm_tokenizer,
                                                                    tmp_path, undeploy_previous):
    """With ``undeploy_previous`` (as `reranker run` deploys), the old model is undeployed while the clients
    still search: searches sent before the switch may still be in flight on it."""
    other_zip = tmp_path / "other.zip"
    export_cross_encoder(tiny_cross_encoder(minilm_tokenizer, seed=1), minilm_tokenizer, other_zip,
                         [("cordless drill", "18V cordless drill kit")], max_length=64)
    cfg = DeployConfig(model_name=unique_names["model"], index=products_index, pipeline=unique_names["pipeline"],
                       document_fields=("title",), undeploy_previous=undeploy_previous)
    first = deploy(client, validate_zip(tiny_zip), cfg)

    # each query's top reranked score under either model, computed locally on the same BM25 page
    top_score = {}
    for name, path in (("old", tiny_zip), ("new", other_zip)):
        scorer = OnnxZipScorer(path)
        for query in QUERIES:
            page = search(client, products_index, query, ("title",), 10, None)
            top_score[name, query] = max(scorer.score(query, [h.text for h in page]))

    stop = threading.Event()
    results: list[tuple[float, str, float]] = []   # (started at, query, top score)
    failures: list[str] = []
    lock = threading.Lock()

    def load(worker: int) -> None:
        own = connect(ClusterConfig(url=opensearch.url))
        n = worker
        while not stop.is_set():
            query = QUERIES[n % len(QUERIES)]
            n += 1
            sent = time.monotonic()
            try:
                hits = search(own, products_index, query, ("title",), 10, unique_names["pipeline"])
                with lock:
                    results.append((sent, query, hits[0].score))
            except Exception as err:  # noqa: BLE001 - every failure counts, whatever its type
                with lock:
                    failures.append(f"{type(err).__name__}: {err}")

    ml = MLCommons(client)
    before = ml.predict_count(first.model_id)
    threads = [threading.Thread(target=load, args=(i,), daemon=True) for i in range(CLIENTS)]
    for thread in threads:
        thread.start()
    time.sleep(1.0)
    # the drain before an undeploy waits on this count: ML Commons must count searches through the pipeline
    assert ml.predict_count(first.model_id) > before
    second = deploy(client, validate_zip(other_zip), cfg)  # register, upload, deploy, test, switch the pipeline
    switched_at = time.monotonic()
    time.sleep(AFTER_SWAP_S)
    stop.set()
    for thread in threads:
        thread.join(timeout=30)

    assert second.previous_model_id == first.model_id != second.model_id
    assert len(results) > 2 * CLIENTS  # the load was real: every client searched before and after the switch
    assert not failures, f"{len(failures)} of {len(failures) + len(results)} searches failed: {failures[:3]}"
    served = []
    for sent, query, score in results:  # every answer was reranked by one of the two models
        model = [m for m in ("old", "new") if score == pytest.approx(top_score[m, query], abs=1e-4)]
        assert model, f"{query!r} answered with score {score}, from neither model"
        served.append((sent, model[0]))
    assert any(m == "old" for _, m in served) and any(m == "new" for _, m in served)
    late = [m for sent, m in served if sent > switched_at]
    assert late and set(late) == {"new"}  # a search sent after the switch is served by the new model
    old_state = MLCommons(client).get_model(first.model_id)["model_state"]
    if undeploy_previous:
        assert second.previous_undeployed and old_state == "UNDEPLOYED"  # freed under load, and no search failed
        record("deploy --undeploy-previous", f"new model deployed, switched and the old one undeployed under "
               f"{CLIENTS} concurrent search clients", f"0 failed of {len(results)} searches; every answer "
               "reranked", "the pipeline on the new model; the old one undeployed (kept registered)")
    else:
        assert old_state == "DEPLOYED"  # in-flight searches were safe
        record("deploy", f"new model deployed and switched in under {CLIENTS} concurrent search clients",
               f"0 failed of {len(results)} searches; every answer reranked", "old model still deployed (undeploy "
               "it when you choose); the pipeline on the new one")
