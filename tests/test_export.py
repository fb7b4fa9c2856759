"""Export writes a zip ML Commons accepts, and onnxruntime reproduces torch's logits."""
from __future__ import annotations

import json
import zipfile

import pytest

from reranker_core.errors import ModelZipError
from training.export import export_cross_encoder, torch_scores
from training.onnx_scorer import OnnxZipScorer

from .conftest import tiny_cross_encoder

PAIRS = [("cordless drill", "18V cordless drill kit with two batteries"), ("cordless drill", "garden hose 50 ft"),
         ("white paint", "interior white paint, 1 gallon, eggshell " * 20)]


def test_export_parity_and_truncation(tmp_path, minilm_tokenizer):
    model = tiny_cross_encoder(minilm_tokenizer, seed=3)
    report = export_cross_encoder(model, minilm_tokenizer, tmp_path / "m.zip", PAIRS, max_length=32)
    assert report.max_abs_diff <= 1e-4
    spec = json.loads(zipfile.ZipFile(report.path).read("tokenizer.json"))
    assert spec["truncation"]["max_length"] == 32
    local = OnnxZipScorer(report.path).score(PAIRS[0][0], [d for _, d in PAIRS[:2]])
    reference = torch_scores(model, minilm_tokenizer, PAIRS[:2], 32)
    assert local == pytest.approx(reference, abs=1e-4)
    assert local[0] != pytest.approx(local[1], abs=1e-6)  # the model distinguishes documents


@pytest.mark.parametrize("max_length", [64, 128, 256])
def test_exported_tokenizer_truncates_to_the_template_and_never_pads(tmp_path, minilm_tokenizer, max_length):
    """Dynamic length (ei-SRC): a short pair stays short under a long template; a long one stops at max_tokens."""
    from tokenizers import Tokenizer

    model = tiny_cross_encoder(minilm_tokenizer, seed=3, positions=512)
    long_doc = "interior white paint, 1 gallon, eggshell, low odor " * 40
    report = export_cross_encoder(model, minilm_tokenizer, tmp_path / "m.zip", [("white paint", long_doc)],
                                  max_length=max_length)
    raw = zipfile.ZipFile(report.path).read("tokenizer.json").decode("utf-8")
    spec = json.loads(raw)
    assert spec["truncation"]["max_length"] == max_length and spec["padding"] is None
    tokenizer = Tokenizer.from_str(raw)  # as ML Commons reads it: no padding call of ours in between
    short, long = tokenizer.encode_batch([("white paint", "eggshell paint"), ("white paint", long_doc)])
    assert len(short.ids) == len(minilm_tokenizer("white paint", "eggshell paint")["input_ids"]) < 16
    assert len(long.ids) == max_length


def test_export_refuses_a_length_past_the_models_positions(tmp_path, minilm_tokenizer):
    model = tiny_cross_encoder(minilm_tokenizer, seed=3)  # 128 positions
    with pytest.raises(ModelZipError, match="256 tokens.*128 positions"):
        export_cross_encoder(model, minilm_tokenizer, tmp_path / "m.zip", PAIRS, max_length=256)
    assert not (tmp_path / "m.zip").exists()


def test_export_refuses_multi_label_head(tmp_path, minilm_tokenizer):
    from transformers import BertConfig, BertForSequenceClassification

    model = BertForSequenceClassification(BertConfig(vocab_size=minilm_tokenizer.vocab_size, hidden_size=16,
                                                     num_hidden_layers=1, num_attention_heads=1,
                                                     intermediate_size=16, num_labels=3))
    with pytest.raises(ModelZipError, match="3 labels"):
        export_cross_encoder(model, minilm_tokenizer, tmp_path / "m.zip", PAIRS)
    assert not (tmp_path / "m.zip").exists()


def test_encoder_without_segment_ids_trains_scores_and_exports_with_the_contracts_inputs(tmp_path, minilm_tokenizer):
    # MPNet (all-mpnet-base-v2, a larger teacher) has no token_type_ids; tokenizers and the zip contract do
    import onnx
    import torch
    from transformers import MPNetConfig, MPNetForSequenceClassification

    from reranker_core.template import ProductTemplate
    from training.student import CrossEncoder

    torch.manual_seed(0)
    model = MPNetForSequenceClassification(MPNetConfig(
        vocab_size=minilm_tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=130, num_labels=1)).eval()
    encoder = CrossEncoder(model, minilm_tokenizer, ProductTemplate(fields=("title",), max_tokens=32))
    logits = encoder.logits([q for q, _ in PAIRS], [d for _, d in PAIRS])
    logits.sum().backward()  # trains: the gradient reaches the embeddings
    assert model.mpnet.embeddings.word_embeddings.weight.grad.abs().sum() > 0
    report = export_cross_encoder(model, minilm_tokenizer, tmp_path / "mpnet.zip", PAIRS, max_length=32)
    assert report.max_abs_diff <= 1e-4
    graph = onnx.load_from_string(zipfile.ZipFile(report.path).read("model.onnx")).graph
    assert {i.name for i in graph.input} == {"input_ids", "attention_mask", "token_type_ids"}
    local = OnnxZipScorer(report.path).score(PAIRS[0][0], [d for _, d in PAIRS[:2]])
    assert local == pytest.approx(logits[:2].tolist(), abs=1e-4)
