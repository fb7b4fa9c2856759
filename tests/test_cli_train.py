"""The training commands chained through the CLI on a small generic dataset with tiny real models."""
from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from click.testing import CliRunner

from reranker_plugin.cli import cli
from training.datasets import split_of

from .conftest import tiny_cross_encoder

pytestmark = pytest.mark.usefixtures("one_torch_thread")
WORDS = ["drill", "paint", "hose", "lamp", "saw", "rug", "tile", "fan", "sink", "door", "bulb", "mower",
         "grill", "shed", "ladder", "vacuum", "faucet", "mirror", "shelf", "heater"]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, minilm_tokenizer) -> Path:
    """Tiny teacher (2-layer Llama) and student (2-layer BERT) checkpoints, a generic dataset and a config."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    root = tmp_path_factory.mktemp("cli-train")
    torch.manual_seed(0)
    llama = LlamaConfig(vocab_size=minilm_tokenizer.vocab_size, hidden_size=32, intermediate_size=64,
                        num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
                        max_position_embeddings=256, pad_token_id=minilm_tokenizer.pad_token_id)
    LlamaForCausalLM(llama).save_pretrained(root / "tiny-llama")
    minilm_tokenizer.save_pretrained(root / "tiny-llama")
    tiny_cross_encoder(minilm_tokenizer).save_pretrained(root / "tiny-bert")
    minilm_tokenizer.save_pretrained(root / "tiny-bert")
    catalog, judgments = [], ["query,product_id,grade"]
    for i, word in enumerate(WORDS):
        for j, other in enumerate([word, WORDS[(i + 1) % len(WORDS)], WORDS[(i + 7) % len(WORDS)]]):
            pid = f"p{i}-{j}"
            catalog.append({"id": pid, "title": f"{other} deluxe model {j}"})
            judgments.append(f"{word},{pid},{1.0 if j == 0 else 0.5 if j == 1 else 0.0}")
    (root / "catalog.jsonl").write_text("\n".join(json.dumps(c) for c in catalog) + "\n")
    (root / "judgments.csv").write_text("\n".join(judgments) + "\n")
    runs = root / "runs"
    config = {
        "data": {"kind": "generic", "path": str(root / "judgments.csv"), "catalog": str(root / "catalog.jsonl")},
        "template": {"fields": ["title"], "max_tokens": 32},
        "teacher": {"kind": "llm", "model": str(root / "tiny-llama"), "gguf_file": None, "train_top_layers": 1, "max_steps": 3,
                    "batch_size": 4, "max_train_queries": None, "output": str(runs / "teacher")},
        "student": {"model": str(root / "tiny-bert"), "layers": None, "max_steps": 3, "queries_per_batch": 2,
                    "output": str(runs / "student")},
    }
    (root / "reranker.yaml").write_text(yaml.safe_dump(config))
    return root


def invoke(workspace: Path, *args: str):
    result = CliRunner().invoke(cli, ["--config", str(workspace / "reranker.yaml"), *args])
    assert result.exit_code == 0, result.output
    return result


def test_the_split_has_training_and_test_queries():
    splits = {split_of(w) for w in WORDS}
    assert {"train", "test"} <= splits


def test_train_label_distil_export_evaluate(workspace):
    runs = workspace / "runs"
    out = invoke(workspace, "train-teacher").output
    assert "teacher saved to" in out and json.loads((runs / "teacher/reranker.json").read_text())["steps"] == 3

    pairs_file = runs / "judged-train.parquet"
    invoke(workspace, "label", str(runs / "teacher"), "--output", str(pairs_file))
    pairs = pq.read_table(pairs_file).to_pylist()
    train_queries = {w for w in WORDS if split_of(w) == "train"}
    assert {p["query"] for p in pairs} == train_queries and len(pairs) == 3 * len(train_queries)
    assert all(p["source"] == "judged" and p["teacher"] == "teacher" and p["label"] is not None for p in pairs)

    invoke(workspace, "train-student", "--pairs", str(pairs_file))
    meta = json.loads((runs / "student/reranker.json").read_text())
    assert meta["loss"] == "margin_mse" and meta["sources"] == ["judged"] and meta["examples"] == len(pairs)
    invoke(workspace, "train-student", "--loss", "pointwise", "--output", str(runs / "student-human"))
    assert json.loads((runs / "student-human/reranker.json").read_text())["loss"] == "pointwise"

    out = invoke(workspace, "export", str(runs / "student")).output
    assert (runs / "student.zip").is_file() and "max |torch - onnxruntime|" in " ".join(out.split())

    result_file = runs / "offline.json"
    out = invoke(workspace, "evaluate-offline", str(runs / "teacher"), str(runs / "student"),
                 str(runs / "student.zip"), "--split", "train", "--json", str(result_file)).output
    results = json.loads(result_file.read_text())
    systems = results["systems"]
    assert set(systems) == {"random", "teacher", "student", "student.zip"}
    assert systems["student"]["ndcg@5"] == pytest.approx(systems["student.zip"]["ndcg@5"], abs=1e-6)
    assert results["queries"] == len(train_queries)
    assert "teacher - random" in results["differences"] and "teacher - student.zip" in results["differences"]
    assert result_file.with_suffix(".png").is_file() and "bootstrap" in out


def test_missing_dataset_is_one_line(tmp_path):
    result = CliRunner().invoke(cli, ["train-teacher", "--data", str(tmp_path / "nope.csv.zip")])
    assert result.exit_code == 2 and "does not exist" in result.output and "Traceback" not in result.output


def test_ensemble_teacher_trains_fits_its_view_and_teaches_with_human_term(workspace):
    """kind: ensemble: a cross-encoder on every human label plus a bi-encoder view weighted on validation."""
    from training.ensemble import EnsembleTeacher, load_teacher
    from training.onnx_scorer import ZipScorer
    from training.views import BiEncoderView

    runs = workspace / "runs"
    config = yaml.safe_load((workspace / "reranker.yaml").read_text())
    config["teacher"] = {"kind": "ensemble", "model": str(workspace / "tiny-bert"),
                         "views": [str(workspace / "tiny-bert")], "max_steps": 4, "queries_per_batch": 2,
                         "output": str(runs / "ensemble")}
    (workspace / "ensemble.yaml").write_text(yaml.safe_dump(config))

    def run(*args: str):
        result = CliRunner().invoke(cli, ["--config", str(workspace / "ensemble.yaml"), *args])
        assert result.exit_code == 0, result.output
        return result.output

    out = run("train-teacher")
    assert "teacher saved to" in out and "view " in out
    meta = json.loads((runs / "ensemble/reranker.json").read_text())
    assert meta["kind"] == "ensemble" and [m["kind"] for m in meta["members"]] == ["cross_encoder", "bi_encoder"]
    assert meta["validation_queries"] == 1 and set(meta["fits"]) == {str(workspace / "tiny-bert")}
    assert (runs / "ensemble/cross_encoder/reranker.json").is_file()  # the human-label cross-encoder, reusable

    teacher = load_teacher(runs / "ensemble")
    assert isinstance(teacher, EnsembleTeacher)
    pairs = [("drill", "drill deluxe model 0"), ("drill", "paint deluxe model 1")]
    base = ZipScorer(runs / "ensemble/cross_encoder.zip").score(pairs)
    view = BiEncoderView(str(workspace / "tiny-bert")).score(pairs)
    a, mu = meta["members"][1]["coefficient"], meta["members"][1]["mean"]
    assert teacher.score(pairs) == pytest.approx([b + a * (v - mu) for b, v in zip(base, view)], abs=1e-5)

    pairs_file = runs / "ensemble-judged.parquet"
    run("label", str(runs / "ensemble"), "--output", str(pairs_file))
    rows = pq.read_table(pairs_file).to_pylist()
    assert rows and all(r["teacher"] == "ensemble" and r["label"] is not None for r in rows)
    run("train-student", "--pairs", str(pairs_file), "--human-weight", "0.5", "--max-pairs", "12",
        "--output", str(runs / "student-ens"))
    meta = json.loads((runs / "student-ens/reranker.json").read_text())
    assert meta["pairs_seen"] >= 12 and meta["steps"] <= 6


def test_ensemble_teacher_trains_by_its_own_epochs_not_the_students_budget(workspace, tmp_path):
    """The teacher's cross-encoder sees teacher.epochs of the labels, whatever student.max_pairs says."""
    config = yaml.safe_load((workspace / "reranker.yaml").read_text())
    config["teacher"] = {"kind": "ensemble", "model": str(workspace / "tiny-bert"), "views": [], "epochs": 2.0,
                         "queries_per_batch": 5, "output": str(tmp_path / "teacher")}
    config["student"]["max_pairs"] = 5
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    result = CliRunner().invoke(cli, ["--config", str(tmp_path / "c.yaml"), "train-teacher"])
    assert result.exit_code == 0, result.output
    losses = json.loads((tmp_path / "teacher/cross_encoder/reranker.json").read_text())["losses"]
    train_queries = sum(split_of(w) == "train" for w in WORDS)
    assert len(losses) == 2 * -(-train_queries // 5)  # two epochs of whole-query batches
