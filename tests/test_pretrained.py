"""`reranker export --from FOLDER`: a cross-encoder the user already has becomes the same validated zip.

Folders are tiny random BERTs saved with the real MiniLM tokenizer; a bad folder
must fail in one line naming it and the fix, and leave no zip behind.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from reranker_core.model_zip import validate_zip
from reranker_plugin.cli import cli
from training.export import torch_scores
from training.onnx_scorer import ZipScorer
from training.pretrained import PROBE_PAIRS

from .conftest import tiny_cross_encoder

pytestmark = pytest.mark.usefixtures("one_torch_thread")
PAIRS = [("cordless drill", "18V cordless drill kit with two batteries"), ("cordless drill", "garden hose 50 ft"),
         ("white paint", "interior white paint, 1 gallon, eggshell " * 30)]


@pytest.fixture(scope="module")
def folders(tmp_path_factory, minilm_tokenizer) -> dict[str, Path]:
    """One good cross-encoder folder and five that cannot be exported."""
    from transformers import BertConfig, BertForSequenceClassification, BertModel

    root = tmp_path_factory.mktemp("folders")
    good = root / "my-cross-encoder"
    tiny_cross_encoder(minilm_tokenizer, seed=5).save_pretrained(good)
    minilm_tokenizer.save_pretrained(good)
    three = root / "three-labels"
    BertForSequenceClassification(BertConfig(vocab_size=minilm_tokenizer.vocab_size, hidden_size=16,
                                             num_hidden_layers=1, num_attention_heads=1, intermediate_size=16,
                                             num_labels=3)).save_pretrained(three)
    minilm_tokenizer.save_pretrained(three)
    no_tokenizer = root / "no-tokenizer"
    tiny_cross_encoder(minilm_tokenizer).save_pretrained(no_tokenizer)
    encoder = root / "plain-encoder"  # a bi-encoder's BertModel: no scoring head at all
    BertModel(BertConfig(vocab_size=minilm_tokenizer.vocab_size, hidden_size=16, num_hidden_layers=1,
                         num_attention_heads=1, intermediate_size=16)).save_pretrained(encoder)
    minilm_tokenizer.save_pretrained(encoder)
    damaged = root / "damaged"
    shutil.copytree(good, damaged)
    (damaged / "model.safetensors").write_bytes(b"not a safetensors file")
    not_a_model = root / "notes"
    not_a_model.mkdir()
    (not_a_model / "README.txt").write_text("a folder of notes, no model here\n")
    return {"good": good, "three_labels": three, "no_tokenizer": no_tokenizer, "not_a_model": not_a_model,
            "plain_encoder": encoder, "damaged": damaged}


def export(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *args: str):
    """``reranker export ...`` from an empty directory, so no reranker.yaml is read."""
    monkeypatch.chdir(tmp_path)
    return CliRunner().invoke(cli, ["export", *args])


def test_folder_exports_to_a_valid_zip_whose_scores_match_torch(folders, tmp_path, monkeypatch):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    out = tmp_path / "model.zip"
    result = export(tmp_path, monkeypatch, "--from", str(folders["good"]), "--output", str(out))
    assert result.exit_code == 0, result.output
    assert f"over {len(PROBE_PAIRS)} built-in probe pairs" in result.output
    artifact = validate_zip(out)
    assert artifact.max_length == 128  # template.max_tokens by default, within the model's 128 positions
    assert len(artifact.hf_config["id2label"]) == 1  # one relevance logit
    model = AutoModelForSequenceClassification.from_pretrained(folders["good"]).eval()
    tokenizer = AutoTokenizer.from_pretrained(folders["good"])
    onnx = ZipScorer(out).score(PAIRS)
    assert onnx == pytest.approx(torch_scores(model, tokenizer, PAIRS, 128), abs=1e-4)
    assert onnx[0] != pytest.approx(onnx[1], abs=1e-6)  # a real model: documents get different scores


def test_max_length_is_written_and_capped_at_what_the_model_reads(folders, tmp_path, monkeypatch):
    out = tmp_path / "short.zip"
    result = export(tmp_path, monkeypatch, "--from", str(folders["good"]), "--output", str(out), "--max-length", "32")
    assert result.exit_code == 0, result.output
    assert validate_zip(out).max_length == 32
    too_long = export(tmp_path, monkeypatch, "--from", str(folders["good"]), "--output", str(tmp_path / "x.zip"),
                      "--max-length", "4096")
    assert too_long.exit_code != 0
    assert "use --max-length 128 or less" in too_long.output
    assert not (tmp_path / "x.zip").exists()


def test_default_zip_name_keeps_dots_in_the_folder_name(folders, tmp_path, monkeypatch):
    dotted = tmp_path / "reranker-v2.5"
    shutil.copytree(folders["good"], dotted)
    result = export(tmp_path, monkeypatch, "--from", str(dotted))
    assert result.exit_code == 0, result.output
    assert validate_zip(tmp_path / "reranker-v2.5.zip").path.name == "reranker-v2.5.zip"


@pytest.mark.parametrize(("name", "reason", "fix"), [
    ("three_labels", "has 3 output labels", "num_labels=1"),
    ("no_tokenizer", "has no tokenizer", "tokenizer.save_pretrained("),
    ("not_a_model", "is not a transformers model folder (no config.json)", "save_pretrained()"),
    ("plain_encoder", "holds a BertModel, not a sequence-classification model", "num_labels=1"),
    ("damaged", "cannot load the model", "save_pretrained()"),
])
def test_bad_folder_fails_in_one_line_and_writes_no_zip(folders, tmp_path, monkeypatch, name, reason, fix):
    out = tmp_path / "model.zip"
    result = export(tmp_path, monkeypatch, "--from", str(folders[name]), "--output", str(out))
    assert result.exit_code != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert str(folders[name]) in lines[0] and reason in lines[0] and fix in lines[0]
    assert not out.exists()
    assert not list(tmp_path.rglob("*.zip")) and not list(folders[name].parent.glob("*.zip"))


def test_export_needs_exactly_one_source(folders, tmp_path, monkeypatch):
    neither = export(tmp_path, monkeypatch)
    assert neither.exit_code == 2 and "--from FOLDER" in neither.output
    both = export(tmp_path, monkeypatch, str(folders["good"]), "--from", str(folders["good"]))
    assert both.exit_code == 2 and "not both" in both.output
