"""Deploy a real tiny cross-encoder into ML Commons and rerank through neural-search."""
from __future__ import annotations

import json
import time
import warnings
import zipfile
from concurrent.futures import ThreadPoolExecutor

import pytest
from click.testing import CliRunner

from reranker_core.config import DeployConfig
from reranker_core.errors import RerankerError
from reranker_core.model_zip import validate_zip
from reranker_plugin.cli import cli
from reranker_plugin.jobs.search import search
from reranker_plugin.mlcommons.client import MLCommons
from reranker_plugin.mlcommons.deploy import deploy, restore_serving
from reranker_plugin.mlcommons.pipeline import get_pipeline, pipeline_model_id
from training.export import export_cross_encoder
from training.onnx_scorer import OnnxZipScorer

from ..conftest import tiny_cross_encoder
from .faults import record

pytestmark = pytest.mark.integration


def wait_for_no_chunks(client, model_id: str, timeout_s: float) -> bool:
    """ML Commons deletes a model's chunks in the background; wait until none is left."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # direct access to the ML system index is deliberate here
            found = client.count(index=".plugins-ml-model", body={"query": {"term": {"model_id": model_id}}},
                                 params={"ignore_unavailable": "true"})["count"]
        if found == 0:
            return True
        time.sleep(1.0)
    return False


def run_cli(opensearch, *args: str):
    return CliRunner().invoke(cli, ["--url", opensearch.url, *args], catch_exceptions=False)


def deploy_cli(opensearch, zip_path, index, names, *extra: str):
    return run_cli(opensearch, "deploy", str(zip_path), "--name", names["model"], "--index", index,
                   "--field", "title", "--pipeline", names["pipeline"], *extra)


def test_reranked_order_and_scores_equal_local_onnxruntime(opensearch, client, products_index, unique_names,
                                                           tiny_zip):
    result = deploy_cli(opensearch, tiny_zip, products_index, unique_names)
    assert result.exit_code == 0, result.output
    model_id = pipeline_model_id(get_pipeline(client, unique_names["pipeline"]))
    assert MLCommons(client).get_model(model_id)["model_state"] == "DEPLOYED"

    scorer = OnnxZipScorer(tiny_zip)
    for query in ("cordless drill", "white paint", "pipe"):
        plain = search(client, products_index, query, ("title",), 10, None)
        reranked = search(client, products_index, query, ("title",), 10, unique_names["pipeline"])
        assert plain and {h.doc_id for h in plain} == {h.doc_id for h in reranked}
        local = dict(zip((h.doc_id for h in plain), scorer.score(query, [h.text for h in plain])))
        expected_order = sorted(local, key=local.get, reverse=True)
        assert [h.doc_id for h in reranked] == expected_order
        for hit in reranked:
            assert hit.score == pytest.approx(local[hit.doc_id], abs=1e-4)

    shown = run_cli(opensearch, "search", "cordless drill", "--index", products_index, "--field", "title",
                    "--pipeline", unique_names["pipeline"], "-k", "5")
    assert shown.exit_code == 0, shown.output
    assert "BM25" in shown.output and "reranked" in shown.output and "drill" in shown.output


def test_broken_zip_is_rejected_and_serving_pipeline_untouched(opensearch, client, products_index, unique_names,
                                                               tiny_zip, tmp_path):
    assert deploy_cli(opensearch, tiny_zip, products_index, unique_names).exit_code == 0
    serving = get_pipeline(client, unique_names["pipeline"])
    before = search(client, products_index, "drill", ("title",), 10, unique_names["pipeline"])

    broken = tmp_path / "broken.zip"
    with zipfile.ZipFile(tiny_zip) as src, zipfile.ZipFile(broken, "w") as dst:
        dst.writestr("model.onnx", src.read("model.onnx")[:5000])  # truncated graph
        dst.writestr("tokenizer.json", src.read("tokenizer.json"))
    models_before = {m.model_id for m in MLCommons(client).list_models()}
    result = deploy_cli(opensearch, broken, products_index, unique_names)
    assert result.exit_code != 0
    assert "not a readable ONNX model" in result.output and "broken.zip" in result.output
    assert {m.model_id for m in MLCommons(client).list_models()} == models_before
    assert get_pipeline(client, unique_names["pipeline"]) == serving
    after = search(client, products_index, "drill", ("title",), 10, unique_names["pipeline"])
    assert [(h.doc_id, round(h.score, 5)) for h in after] == [(h.doc_id, round(h.score, 5)) for h in before]


def failing_zip(path, tiny_zip):
    """A zip that passes every contract check but whose graph fails at run time (bad Reshape)."""
    from onnx import TensorProto, helper

    names = ("input_ids", "attention_mask", "token_type_ids")
    inputs = [helper.make_tensor_value_info(n, TensorProto.INT64, ["batch", "seq"]) for n in names]
    shape = helper.make_tensor("shape", TensorProto.INT64, [2], [-1, 1000003])
    axes = helper.make_tensor("axes", TensorProto.INT64, [1], [1])
    nodes = [helper.make_node("Cast", ["input_ids"], ["f"], to=TensorProto.FLOAT),
             helper.make_node("Reshape", ["f", "shape"], ["r"]),
             helper.make_node("ReduceSum", ["r", "axes"], ["score"], keepdims=1)]
    graph = helper.make_graph(nodes, "fails", inputs,
                              [helper.make_tensor_value_info("score", TensorProto.FLOAT, ["batch", 1])], [shape, axes])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    with zipfile.ZipFile(tiny_zip) as src, zipfile.ZipFile(path, "w") as dst:
        dst.writestr("model.onnx", model.SerializeToString())
        dst.writestr("tokenizer.json", src.read("tokenizer.json"))
    return path


def test_failed_deploy_rolls_back_and_rerun_converges(client, products_index, unique_names, tiny_zip, tmp_path):
    cfg = DeployConfig(model_name=unique_names["model"], index=products_index, pipeline=unique_names["pipeline"],
                       document_fields=("title",), chunk_size_bytes=100_000)
    ml = MLCommons(client)
    first = deploy(client, validate_zip(tiny_zip), cfg)
    serving = get_pipeline(client, unique_names["pipeline"])

    bad = validate_zip(failing_zip(tmp_path / "fails.zip", tiny_zip))
    with pytest.raises(RerankerError, match="_predict failed"):
        deploy(client, bad, cfg)
    assert [m.model_id for m in ml.list_models() if m.name == unique_names["model"]] == [first.model_id]
    assert get_pipeline(client, unique_names["pipeline"]) == serving

    again = deploy(client, validate_zip(tiny_zip), cfg)
    assert not first.reused and again.reused and again.model_id == first.model_id
    assert [m.model_id for m in ml.list_models() if m.name == unique_names["model"]] == [first.model_id]


def test_default_pipeline_reranks_plain_searches(opensearch, client, products_index, unique_names, tiny_zip):
    assert deploy_cli(opensearch, tiny_zip, products_index, unique_names, "--default-pipeline").exit_code == 0
    settings = client.indices.get_settings(index=products_index)[products_index]["settings"]["index"]
    assert settings["search"]["default_pipeline"] == unique_names["pipeline"]
    body = {"size": 5, "query": {"match": {"title": "drill"}},
            "ext": {"rerank": {"query_context": {"query_text": "drill"}}}}
    hits = client.search(index=products_index, body=body)["hits"]["hits"]
    local = OnnxZipScorer(tiny_zip).score("drill", [h["_source"]["title"] for h in hits])
    assert [h["_score"] for h in hits] == pytest.approx(local, abs=1e-4)


def test_undeploy_and_delete_leave_nothing(opensearch, client, products_index, unique_names, tiny_zip):
    assert deploy_cli(opensearch, tiny_zip, products_index, unique_names).exit_code == 0
    model_id = pipeline_model_id(get_pipeline(client, unique_names["pipeline"]))
    listed = run_cli(opensearch, "models", "list")
    assert model_id in listed.output and "fp32" in listed.output
    rows = {m["model_id"]: m for m in json.loads(run_cli(opensearch, "models", "list", "--format", "json").output)}
    row = rows[model_id]
    assert (row["precision"], row["layers"], row["state"]) == ("fp32", 2, "DEPLOYED")
    assert row["size_bytes"] == tiny_zip.stat().st_size and row["pipelines"] == [unique_names["pipeline"]]

    for verb in ("undeploy", "delete"):  # the model serves the test's pipeline: refused, nothing changed
        refused = run_cli(opensearch, "models", verb, "--", model_id)
        assert refused.exit_code == 1 and f"serves search pipeline(s) {unique_names['pipeline']}" in refused.output
        assert "--force" in refused.output and len(refused.output.strip().splitlines()) == 1
    ml = MLCommons(client)
    assert ml.get_model(model_id)["model_state"] == "DEPLOYED"
    assert run_cli(opensearch, "models", "undeploy", "--force", "--", model_id).exit_code == 0
    ml.wait_for_state(model_id, {"UNDEPLOYED", "DEPLOY_FAILED"}, 60)
    assert ml.get_model(model_id)["model_state"] != "DEPLOYED"  # ML Commons reports either state after undeploy
    with pytest.raises(RerankerError, match="_predict failed"):
        ml.predict(model_id, "drill", ["cordless drill"])

    assert run_cli(opensearch, "models", "delete", "--force", "--", model_id).exit_code == 0
    assert ml.get_model(model_id) is None
    assert wait_for_no_chunks(client, model_id, timeout_s=60)
    gone = run_cli(opensearch, "models", "delete", "--", model_id)
    assert gone.exit_code == 1 and "does not exist" in gone.output


def test_pipeline_show_prints_the_rendered_pipeline(opensearch, products_index, unique_names, tiny_zip):
    assert deploy_cli(opensearch, tiny_zip, products_index, unique_names).exit_code == 0
    shown = run_cli(opensearch, "pipeline", "show", unique_names["pipeline"])
    assert shown.exit_code == 0 and '"document_fields"' in shown.output and '"title"' in shown.output
    missing = run_cli(opensearch, "pipeline", "show", "no-such-pipeline")
    assert missing.exit_code == 1 and "does not exist" in missing.output


def test_model_behind_a_pipeline_that_stopped_answering_is_deployed_again(opensearch, client, products_index,
                                                                          unique_names, tiny_zip):
    """What a node restart leaves behind when ML Commons does not redeploy: `cluster up` repairs it."""
    assert deploy_cli(opensearch, tiny_zip, products_index, unique_names).exit_code == 0
    model_id = pipeline_model_id(get_pipeline(client, unique_names["pipeline"]))
    ml = MLCommons(client)
    ml.undeploy(model_id)
    ml.wait_for_state(model_id, {"UNDEPLOYED", "DEPLOY_FAILED"}, 60)
    broken = run_cli(opensearch, "search", "drill", "--index", products_index, "--field", "title",
                     "--pipeline", unique_names["pipeline"])
    assert broken.exit_code == 1 and "not deployed" in broken.output and "cluster up" in broken.output

    assert model_id in restore_serving(client)
    assert ml.get_model(model_id)["model_state"] == "DEPLOYED"
    assert search(client, products_index, "drill", ("title",), 5, unique_names["pipeline"])
    assert model_id not in restore_serving(client)  # answering models are left alone


def test_two_restores_at_once_both_succeed(opensearch, client, products_index, unique_names, tiny_zip):
    """ML Commons fails the later of two deploys of one model ("Duplicate deploy model task"). After a node
    restart its own redeploy races `cluster up`'s that way: the loser must wait for the winner, not fail."""
    assert deploy_cli(opensearch, tiny_zip, products_index, unique_names).exit_code == 0
    model_id = pipeline_model_id(get_pipeline(client, unique_names["pipeline"]))
    ml = MLCommons(client)
    for _ in range(3):  # which deploy loses, and how (duplicate or version conflict), varies from run to run
        ml.undeploy(model_id)
        ml.wait_for_state(model_id, {"UNDEPLOYED", "DEPLOY_FAILED"}, 60)
        with ThreadPoolExecutor(2) as pool:  # raises here if either restore failed
            restored = [future.result() for future in [pool.submit(restore_serving, client) for _ in range(2)]]
        assert model_id in restored[0] + restored[1]
        assert ml.get_model(model_id)["model_state"] == "DEPLOYED"
        assert search(client, products_index, "drill", ("title",), 5, unique_names["pipeline"])


def test_undeploy_previous_frees_the_replaced_model_but_not_one_another_pipeline_uses(
        opensearch, client, products_index, unique_names, tiny_zip, minilm_tokenizer, tmp_path):
    """ML Commons caps deployed models per node: a redeploying main job must not pile them up."""
    other_zip = tmp_path / "other.zip"
    export_cross_encoder(tiny_cross_encoder(minilm_tokenizer, seed=1), minilm_tokenizer, other_zip,
                         [("drill", "cordless drill")], max_length=64)
    assert deploy_cli(opensearch, tiny_zip, products_index, unique_names).exit_code == 0
    first = pipeline_model_id(get_pipeline(client, unique_names["pipeline"]))
    shared = {**unique_names, "pipeline": unique_names["pipeline"] + "-shared"}
    assert deploy_cli(opensearch, tiny_zip, products_index, shared).exit_code == 0  # a second pipeline on it
    ml = MLCommons(client)
    try:
        kept = deploy_cli(opensearch, other_zip, products_index, unique_names, "--undeploy-previous")
        assert kept.exit_code == 0 and "still deployed" in kept.output
        assert ml.get_model(first)["model_state"] == "DEPLOYED"  # the shared pipeline still serves with it

        assert deploy_cli(opensearch, other_zip, products_index, shared, "--undeploy-previous").exit_code == 0
        ml.wait_for_state(first, {"UNDEPLOYED", "DEPLOY_FAILED"}, 60)
        assert ml.get_model(first)["model_state"] != "DEPLOYED"
        second = pipeline_model_id(get_pipeline(client, unique_names["pipeline"]))
        assert second != first and ml.get_model(second)["model_state"] == "DEPLOYED"
        assert search(client, products_index, "drill", ("title",), 5, shared["pipeline"])
    finally:
        client.search_pipeline.delete(id=shared["pipeline"], ignore=[404])  # as model_and_pipeline_names does


@pytest.mark.parametrize("same_zip", [True, False], ids=["same-zip", "different-zips"])
def test_two_operators_deploying_at_once_both_succeed_and_lose_no_model(opensearch, client, products_index,
                                                                         tiny_zip, minilm_tokenizer, tmp_path,
                                                                         same_zip):
    """A deploy used to delete every half-uploaded model with its zip's sha256, including another operator's
    upload in progress. Each deploy here serves its own pipeline; both must end DEPLOYED and answering."""
    from .conftest import model_and_pipeline_names

    other = tiny_zip
    if not same_zip:
        other = tmp_path / "other.zip"
        export_cross_encoder(tiny_cross_encoder(minilm_tokenizer, seed=3), minilm_tokenizer, other,
                             [("cordless drill", "18V cordless drill kit")], max_length=64)
    names = [model_and_pipeline_names(client, "race") for _ in range(2)]
    try:
        pair = [next(n) for n in names]
        name = pair[0]["model"]  # one model name: the same zip would be reused, or raced, under it
        cfgs = [DeployConfig(model_name=name, index=products_index, pipeline=p["pipeline"], document_fields=("title",),
                             chunk_size_bytes=20_000) for p in pair]  # many chunks: the uploads overlap
        with ThreadPoolExecutor(2) as pool:  # raises here if either deploy failed
            results = [f.result() for f in [pool.submit(deploy, client, validate_zip(z), c)
                                            for z, c in zip((tiny_zip, other), cfgs)]]
        ml = MLCommons(client)
        for result, cfg in zip(results, cfgs):
            assert pipeline_model_id(get_pipeline(client, cfg.pipeline)) == result.model_id
            assert ml.get_model(result.model_id)["model_state"] == "DEPLOYED"
            assert search(client, products_index, "drill", ("title",), 5, cfg.pipeline)
        record("deploy", f"two operators deploy {'the same zip' if same_zip else 'two different zips'} at once "
               "under one model name", "both deploys exit 0",
               "both models DEPLOYED, each pipeline on its own model and answering; no model lost")
    finally:
        for n in names:  # the fixture generators' clean-up: models named like the first, both pipelines
            next(n, None)
        for model in MLCommons(client).list_models():
            if model.name == pair[0]["model"]:
                MLCommons(client).delete(model.model_id)
