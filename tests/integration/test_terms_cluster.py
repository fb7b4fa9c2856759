"""ML Commons applies the zip's term normalisation: every spelling of a size gets one score, through the cluster."""
from __future__ import annotations

import copy

import pytest

from reranker_core.config import DeployConfig
from reranker_core.model_zip import validate_zip
from reranker_plugin.mlcommons.client import MLCommons
from reranker_plugin.mlcommons.deploy import deploy
from training.export import export_cross_encoder
from training.onnx_scorer import OnnxZipScorer
from training.terms import with_term_normalizer

from ..conftest import tiny_cross_encoder

pytestmark = pytest.mark.integration

SAME_SIZE = ["3/4 in. plywood", "0.75 inch plywood", '3/4" plywood', ".75 in plywood"]
DOC = "birch plywood sheet 4 ft x 8 ft"


def test_ml_commons_scores_every_spelling_of_a_size_alike_with_the_normalizing_zip(
        client, products_index, unique_names, minilm_tokenizer, tmp_path):
    model = tiny_cross_encoder(minilm_tokenizer, seed=3)
    ml = MLCommons(client)
    found = {}
    for name, tok in (("normalized", with_term_normalizer(copy.deepcopy(minilm_tokenizer))),
                      ("raw", minilm_tokenizer)):
        path = tmp_path / f"{name}.zip"
        export_cross_encoder(model, tok, path, [(SAME_SIZE[0], DOC)], max_length=64)
        cfg = DeployConfig(model_name=unique_names["model"], index=products_index, pipeline=unique_names["pipeline"],
                           document_fields=("title",))
        model_id = deploy(client, validate_zip(path), cfg).model_id
        found[name] = [ml.predict(model_id, q, [DOC])[0] for q in SAME_SIZE]
        local = [OnnxZipScorer(path).score(q, [DOC])[0] for q in SAME_SIZE]
        assert found[name] == pytest.approx(local, abs=1e-4)  # the cluster tokenizes as onnxruntime here does
    assert max(found["normalized"]) - min(found["normalized"]) < 1e-6
    assert max(found["raw"]) - min(found["raw"]) > 1e-5  # without the rules the cluster sees four queries
