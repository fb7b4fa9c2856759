"""Mixing two students in weight space: exact endpoints, a parameter-wise average between, refusals."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from reranker_core.config import StudentConfig
from training.export import export_student
from training.models import ModelError, read_meta
from training.soup import mix_students
from training.student import CrossEncoder, train_student

from .conftest import tiny_cross_encoder
from .test_student import MARGIN_EXAMPLES, TEMPLATE

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def students(tmp_path_factory, minilm_tokenizer) -> dict[str, Path]:
    """Two students from the same tiny BERT (different seeds and steps) and one cut to a single layer."""
    base = tmp_path_factory.mktemp("base")
    tiny_cross_encoder(minilm_tokenizer).save_pretrained(base)
    minilm_tokenizer.save_pretrained(base)
    out = tmp_path_factory.mktemp("students")
    found = {}
    for name, seed, steps, layers in (("a", 0, 10, None), ("b", 1, 20, None), ("one-layer", 0, 5, 1)):
        cfg = StudentConfig(model=str(base), layers=layers, output=str(out / name), max_steps=steps,
                            queries_per_batch=4, learning_rate=3e-3, seed=seed)
        found[name] = train_student(cfg, TEMPLATE, MARGIN_EXAMPLES, device="cpu").path
    return found


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return CrossEncoder.load(path).model.state_dict()


def test_a_mix_is_the_parameter_wise_interpolation_and_its_endpoints_are_the_students(students, tmp_path):
    a, b = _weights(students["a"]), _weights(students["b"])
    assert any(not torch.equal(a[k], b[k]) for k in a)
    for weight in (0.0, 0.25, 1.0):
        mixed = _weights(mix_students(students["a"], students["b"], weight, tmp_path / f"mix-{weight}"))
        for name, value in mixed.items():
            expected = a[name] + weight * (b[name] - a[name]) if value.is_floating_point() else a[name]
            torch.testing.assert_close(value, expected, rtol=0, atol=1e-6)
    assert all(torch.equal(_weights(tmp_path / "mix-0.0")[k], a[k]) for k in a)
    meta = read_meta(tmp_path / "mix-0.25")
    assert meta["mix"] == {"first": str(students["a"]), "second": str(students["b"]), "weight": 0.25}
    assert meta["role"] == "student" and "curve" not in meta


def test_a_mix_scores_between_its_students_and_exports(students, tmp_path):
    pairs = [(e.query, e.text) for e in MARGIN_EXAMPLES]
    mixed = mix_students(students["a"], students["b"], 0.5, tmp_path / "mix")
    scores = {p: torch.tensor(CrossEncoder.load(p).score(pairs)) for p in (students["a"], students["b"], mixed)}
    assert not torch.allclose(scores[mixed], scores[students["a"]], atol=1e-3)
    assert not torch.allclose(scores[mixed], scores[students["b"]], atol=1e-3)
    export_student(mixed, tmp_path / "mix.zip")  # its parity check runs the mix in onnxruntime against torch
    assert (tmp_path / "mix.zip").stat().st_size > 0


def test_students_of_different_shapes_or_a_weight_outside_0_1_are_refused_and_nothing_is_written(students, tmp_path):
    with pytest.raises(ModelError, match="layers differ"):
        mix_students(students["a"], students["one-layer"], 0.5, tmp_path / "bad")
    with pytest.raises(ValueError, match="outside"):
        mix_students(students["a"], students["b"], 1.5, tmp_path / "bad")
    assert not (tmp_path / "bad").exists()


def test_the_cli_writes_the_mix_and_refuses_a_mismatch_in_one_line(students, tmp_path):
    from click.testing import CliRunner

    from reranker_plugin.cli import cli

    done = CliRunner().invoke(cli, ["mix-students", str(students["a"]), str(students["b"]), "--weight", "0.3",
                                    "--output", str(tmp_path / "mix")])
    assert done.exit_code == 0, done.output
    assert read_meta(tmp_path / "mix")["mix"]["weight"] == 0.3
    refused = CliRunner().invoke(cli, ["mix-students", str(students["a"]), str(students["one-layer"]),
                                       "--output", str(tmp_path / "bad")])
    assert refused.exit_code != 0 and "layers differ" in refused.output and "Traceback" not in refused.output
    assert len(refused.output.strip().splitlines()) == 1 and not (tmp_path / "bad").exists()
