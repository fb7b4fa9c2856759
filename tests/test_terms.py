"""Term normalisation lives in the tokenizer: the checkpoint, onnxruntime and the exported zip all apply it."""
from __future__ import annotations

import copy
import json
import zipfile

import pytest

from training.terms import normalizes_terms, with_term_normalizer

from .conftest import tiny_cross_encoder

SAME_SIZE = ["3/4 in. plywood", "0.75 inch plywood", '3/4" plywood', ".75 in plywood", "3/4-inch plywood"]
VARIANTS = [("1-1/2 in pvc pipe 10 ft", "1.5 inch pvc pipe 10 feet"), ("18v drill", "18-Volt drill"),
            ("100 sq. ft. tile", "100 square feet tile"), ("5 gallon bucket", "5 gal. bucket"),
            ("3/16 in. x 1 in. bolt", "0.1875 inch x 1 inch bolt")]
UNCHANGED = ["win 2 in 1 tool", "2x4x8 stud", "r-13 insulation", "model 2.0 router", "10 amp fuse"]


@pytest.fixture()
def normalizing(minilm_tokenizer):
    return with_term_normalizer(copy.deepcopy(minilm_tokenizer))


def test_spellings_of_one_size_become_one_text(normalizing, minilm_tokenizer):
    norm = normalizing.backend_tokenizer.normalizer.normalize_str
    assert {norm(t) for t in SAME_SIZE} == {"0.75 in plywood"}
    for a, b in VARIANTS:
        assert norm(a) == norm(b), (a, b)
    raw = minilm_tokenizer.backend_tokenizer.normalizer.normalize_str
    assert [norm(t) for t in UNCHANGED] == [raw(t) for t in UNCHANGED]  # no number-unit mention: as before
    assert normalizes_terms(normalizing) and not normalizes_terms(minilm_tokenizer)


def test_a_student_trained_with_the_rules_keeps_them_when_loaded_and_exported(minilm_tokenizer, tmp_path):
    from reranker_core.config import StudentConfig
    from reranker_core.template import ProductTemplate
    from training.export import export_student
    from training.student import CrossEncoder, StudentExample, train_student

    init = tmp_path / "init"
    tiny_cross_encoder(minilm_tokenizer).save_pretrained(init)
    minilm_tokenizer.save_pretrained(init)
    examples = [StudentExample(q, f"{q} offer {k}", float(k)) for q in SAME_SIZE for k in range(2)]
    cfg = StudentConfig(model=str(init), layers=None, output=str(tmp_path / "student"), max_steps=1,
                        normalize_terms=True)
    report = train_student(cfg, ProductTemplate(max_tokens=32), examples, device="cpu")
    loaded = CrossEncoder.load(report.path)
    assert normalizes_terms(loaded.tokenizer)
    assert loaded.score([(SAME_SIZE[0], "sheet")]) == loaded.score([(SAME_SIZE[1], "sheet")])
    export_student(report.path, tmp_path / "student.zip")
    with zipfile.ZipFile(tmp_path / "student.zip") as z:
        assert "Replace" in json.dumps(json.loads(z.read("tokenizer.json"))["normalizer"])
    plain = train_student(StudentConfig(**{**cfg.__dict__, "output": str(tmp_path / "plain"),
                                           "normalize_terms": False}), ProductTemplate(max_tokens=32), examples,
                          device="cpu")
    assert not normalizes_terms(CrossEncoder.load(plain.path).tokenizer)


def test_the_exported_zip_scores_every_spelling_alike_and_the_raw_zip_does_not(normalizing, minilm_tokenizer,
                                                                              tmp_path):
    from training.export import export_cross_encoder
    from training.onnx_scorer import OnnxZipScorer

    model = tiny_cross_encoder(minilm_tokenizer, seed=3)
    probe = [("3/4 in. plywood", "0.75 inch birch plywood sheet")]
    paths = {}
    for name, tok in (("normalized", normalizing), ("raw", minilm_tokenizer)):
        paths[name] = tmp_path / f"{name}.zip"
        export_cross_encoder(model, tok, paths[name], probe, max_length=64)  # its parity check uses ``tok``
    with zipfile.ZipFile(paths["normalized"]) as z:
        assert "Replace" in json.dumps(json.loads(z.read("tokenizer.json"))["normalizer"])
    doc = "birch plywood sheet 4 ft x 8 ft"
    alike = [OnnxZipScorer(paths["normalized"]).score(q, [doc])[0] for q in SAME_SIZE]
    raw = [OnnxZipScorer(paths["raw"]).score(q, [doc])[0] for q in SAME_SIZE]
    assert max(alike) == min(alike)  # one input, one score
    assert max(raw) - min(raw) > 1e-5  # the raw tokenizer sees five different queries (a tiny random model)
