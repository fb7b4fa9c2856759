"""The ML Commons zip contract: a valid zip passes, each violation gets its own message."""
from __future__ import annotations

import json
import zipfile
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from reranker_core.errors import ModelZipError
from reranker_core.model_zip import validate_zip

NAMES = ("input_ids", "attention_mask", "token_type_ids")


def graph_bytes(names=NAMES, elem=TensorProto.INT64, in_shape=("batch", "seq"), out_shape=("batch", 1),
                outputs=1, opset=17, ir=8, external=False) -> bytes:
    """A small real ONNX graph: sums the token ids of each row into a [batch, 1] score."""
    inputs = [helper.make_tensor_value_info(n, elem, list(in_shape)) for n in names]
    nodes = [helper.make_node("Cast", [names[0]], ["f"], to=TensorProto.FLOAT),
             helper.make_node("ReduceSum", ["f", "axes"], ["score"], keepdims=1)]
    axes = helper.make_tensor("axes", TensorProto.INT64, [1], [1])
    if external:
        axes.data_location = TensorProto.EXTERNAL
    outs = [helper.make_tensor_value_info("score", TensorProto.FLOAT, list(out_shape))]
    if outputs == 2:
        nodes.append(helper.make_node("Identity", ["score"], ["extra"]))
        outs.append(helper.make_tensor_value_info("extra", TensorProto.FLOAT, list(out_shape)))
    model = helper.make_model(helper.make_graph(nodes, "g", inputs, outs, [axes]),
                              opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = ir
    return model.SerializeToString()


def tokenizer_bytes(minilm_tokenizer, truncation: bool = True) -> bytes:
    spec = json.loads(minilm_tokenizer.backend_tokenizer.to_str())
    spec["truncation"] = ({"direction": "Right", "max_length": 64, "strategy": "LongestFirst", "stride": 0}
                          if truncation else None)
    return json.dumps(spec).encode()


def write_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def test_valid_zip_passes(tmp_path, minilm_tokenizer):
    path = write_zip(tmp_path / "ok.zip", {"model.onnx": graph_bytes(), "tokenizer.json": tokenizer_bytes(minilm_tokenizer)})
    artifact = validate_zip(path)
    assert artifact.onnx_name == "model.onnx"
    assert artifact.max_length == 64
    assert len(artifact.sha256) == 64
    assert artifact.total_chunks(10) == -(-path.stat().st_size // 10)


def test_exported_zip_passes(tiny_zip):
    assert validate_zip(tiny_zip).hf_config["model_type"] == "bert"


@pytest.mark.parametrize("members, message", [
    ({"tokenizer.json": None}, "holds no .onnx"),
    ({"a.onnx": "graph", "b.onnx": "graph", "tokenizer.json": None}, "holds 2 .onnx files"),
    ({"sub/model.onnx": "graph", "tokenizer.json": None}, "inside a folder"),
    ({"model.onnx": "graph"}, "no tokenizer.json"),
    ({"model.onnx": "graph", "tokenizer.json": b"{not json"}, "not a loadable tokenizer"),
    ({"model.onnx": "graph", "tokenizer.json": "no-truncation"}, "no truncation block"),
    ({"model.onnx": b"\x00garbage\xff" * 10, "tokenizer.json": None}, "not a readable ONNX model"),
    ({"model.onnx": graph_bytes(names=("input_ids", "attention_mask", "segment_ids")), "tokenizer.json": None},
     "expected exactly ['input_ids', 'attention_mask', 'token_type_ids']"),
    ({"model.onnx": graph_bytes(names=("input_ids", "attention_mask")), "tokenizer.json": None}, "ONNX inputs are"),
    ({"model.onnx": graph_bytes(elem=TensorProto.INT32), "tokenizer.json": None}, "is not int64"),
    ({"model.onnx": graph_bytes(in_shape=(1, 128)), "tokenizer.json": None}, "expected dynamic [batch, sequence]"),
    ({"model.onnx": graph_bytes(outputs=2), "tokenizer.json": None}, "2 outputs, expected 1"),
    ({"model.onnx": graph_bytes(out_shape=("batch", 2)), "tokenizer.json": None}, "expected [batch, 1]"),
    ({"model.onnx": graph_bytes(opset=18), "tokenizer.json": None}, "opset 18 is newer than 17"),
    ({"model.onnx": graph_bytes(ir=10), "tokenizer.json": None}, "IR version 10 is newer than 9"),
    ({"model.onnx": graph_bytes(external=True), "tokenizer.json": None}, "external data"),
])
def test_each_violation_has_its_own_message(tmp_path, minilm_tokenizer, members, message):
    resolved = {}
    for name, data in members.items():
        if data is None:
            data = tokenizer_bytes(minilm_tokenizer)
        elif data == "graph":
            data = graph_bytes()
        elif data == "no-truncation":
            data = tokenizer_bytes(minilm_tokenizer, truncation=False)
        resolved[name] = data
    path = write_zip(tmp_path / "bad.zip", resolved)
    with pytest.raises(ModelZipError) as err:
        validate_zip(path)
    assert message in str(err.value)
    assert str(path) in str(err.value)


def test_not_a_zip_and_missing_file(tmp_path):
    text = tmp_path / "model.zip"
    text.write_text("hello")
    with pytest.raises(ModelZipError, match="is not a zip file"):
        validate_zip(text)
    with pytest.raises(ModelZipError, match="does not exist"):
        validate_zip(tmp_path / "absent.zip")


def test_graph_helper_builds_a_checkable_model():
    onnx.checker.check_model(onnx.load_model_from_string(graph_bytes()))
