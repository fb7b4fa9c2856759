"""The model zip contract of ML Commons for ONNX cross-encoders, checked before any upload.

ML Commons (2.19 – 3.x) deploys a TEXT_SIMILARITY model from a zip holding exactly
one ``*.onnx`` at the root plus a Hugging Face ``tokenizer.json``; it bundles
onnxruntime 1.16.3, so the graph must stay within opset 17 and IR version 9. It
pads but truncates only if ``tokenizer.json`` says so. Every rule gets its own
message, because "deploy failed" from the cluster minutes later helps nobody.
"""
from __future__ import annotations

import hashlib
import json
import math
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ModelZipError
from .files import atomic_write

REQUIRED_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
MAX_OPSET = 17
MAX_IR_VERSION = 9
TOKENIZER_FILE = "tokenizer.json"
CONFIG_FILE = "config.json"
_INT64 = 7  # onnx.TensorProto.INT64
#: Operators that onnxruntime's dynamic quantization writes: their presence marks an int8 model.
_INT8_OPS = {"DynamicQuantizeLinear", "MatMulInteger", "QLinearMatMul", "DynamicQuantizeMatMul", "QAttention"}


@dataclass(frozen=True)
class ModelArtifact:
    """A validated zip and what registering it needs."""

    path: Path
    onnx_name: str
    size_bytes: int
    sha256: str
    max_length: int
    hf_config: dict[str, Any]
    precision: str = "fp32"   # "int8" when the graph holds quantized operators

    @property
    def layers(self) -> int | None:
        return self.hf_config.get("num_hidden_layers")

    def total_chunks(self, chunk_size: int) -> int:
        return max(1, math.ceil(self.size_bytes / chunk_size))


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def validate_zip(path: Path) -> ModelArtifact:
    """Check ``path`` against the contract; raise :class:`ModelZipError` naming the first violation."""
    path = Path(path)
    if not path.is_file():
        raise ModelZipError(f"model zip {path} does not exist", "pass the zip written by `reranker export`")
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, EOFError) as err:
        raise ModelZipError(f"{path} is not a zip file", "re-export it with `reranker export`") from err
    try:
        with zf:
            onnx_name, max_length, hf_config, model = _read_members(path, zf)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ModelZipError(f"{path} is damaged ({reason})", "copy or re-export the zip; it did not arrive whole") from err
    _check_graph(path, model)
    precision = "int8" if any(node.op_type in _INT8_OPS for node in model.graph.node) else "fp32"
    return ModelArtifact(path, onnx_name, path.stat().st_size, sha256_of(path), max_length, hf_config, precision)


def _read_members(path: Path, zf: zipfile.ZipFile) -> tuple[str, int, dict[str, Any], Any]:
    """The checked members: ONNX file name, truncation length, HF config and the loaded graph."""
    import onnx  # lazy: keeps `reranker --help` fast

    names = [n for n in zf.namelist() if not n.endswith("/")]
    onnx_files = [n for n in names if n.lower().endswith(".onnx")]
    root_onnx = [n for n in onnx_files if "/" not in n]
    if not onnx_files:
        raise ModelZipError(f"{path} holds no .onnx file", "the zip needs exactly one model.onnx at its root")
    if len(onnx_files) > 1:
        raise ModelZipError(f"{path} holds {len(onnx_files)} .onnx files ({', '.join(onnx_files)})",
                            "keep exactly one; ML Commons cannot choose")
    if not root_onnx:
        raise ModelZipError(f"{path}: {onnx_files[0]} is inside a folder", "put the .onnx at the zip root")
    if TOKENIZER_FILE not in names:
        raise ModelZipError(f"{path} has no {TOKENIZER_FILE} at its root",
                            "add the model's fast-tokenizer file (tokenizer.save / export)")
    max_length = _check_tokenizer(path, zf.read(TOKENIZER_FILE))
    hf_config: dict[str, Any] = {}
    if CONFIG_FILE in names:
        raw_config = zf.read(CONFIG_FILE)
        try:
            hf_config = json.loads(raw_config)
        except (ValueError, UnicodeDecodeError) as err:
            raise ModelZipError(f"{path}: {CONFIG_FILE} is not valid JSON", "re-export the model") from err
        if not isinstance(hf_config, dict):
            raise ModelZipError(f"{path}: {CONFIG_FILE} is not a JSON object", "re-export the model")
    raw_graph = zf.read(root_onnx[0])
    try:
        model = onnx.load_model_from_string(raw_graph)
    except Exception as err:  # onnx raises DecodeError and friends
        raise ModelZipError(f"{path}: {root_onnx[0]} is not a readable ONNX model ({type(err).__name__})",
                            "re-export it; the file may be truncated") from err
    return root_onnx[0], max_length, hf_config, model


def _check_tokenizer(path: Path, raw: bytes) -> int:
    from tokenizers import Tokenizer

    try:
        spec = json.loads(raw)
        Tokenizer.from_str(raw.decode("utf-8"))
    except Exception as err:
        raise ModelZipError(f"{path}: {TOKENIZER_FILE} is not a loadable tokenizer ({type(err).__name__})",
                            "save it with a Hugging Face fast tokenizer") from err
    truncation = spec.get("truncation")
    if not truncation or not truncation.get("max_length"):
        raise ModelZipError(f"{path}: {TOKENIZER_FILE} has no truncation block",
                            "ML Commons will not truncate long texts; export with `reranker export` (sets max_length)")
    return int(truncation["max_length"])


def _dims(value_info: Any) -> list[str | int]:
    shape = value_info.type.tensor_type.shape
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in shape.dim]


def _check_graph(path: Path, model: Any) -> None:
    graph = model.graph
    if any(t.data_location == 1 for t in graph.initializer):
        raise ModelZipError(f"{path}: the ONNX model keeps weights as external data",
                            "export as a single file (external_data=False)")
    initializers = {t.name for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initializers]
    names = [i.name for i in inputs]
    if sorted(names) != sorted(REQUIRED_INPUTS):
        raise ModelZipError(f"{path}: ONNX inputs are {names}, expected exactly {list(REQUIRED_INPUTS)}",
                            "export with those three input names")
    for value in inputs:
        if value.type.tensor_type.elem_type != _INT64:
            raise ModelZipError(f"{path}: input {value.name} is not int64", "export the inputs as torch.long")
        dims = _dims(value)
        if len(dims) != 2 or any(isinstance(d, int) and d > 0 for d in dims):
            raise ModelZipError(f"{path}: input {value.name} has shape {dims}, expected dynamic [batch, sequence]",
                                "export with dynamic_axes for batch and sequence")
    if len(graph.output) != 1:
        raise ModelZipError(f"{path}: the model has {len(graph.output)} outputs, expected 1",
                            "return only the relevance logit")
    out_dims = _dims(graph.output[0])
    if len(out_dims) != 2 or out_dims[1] != 1 or (isinstance(out_dims[0], int) and out_dims[0] > 0):
        raise ModelZipError(f"{path}: output shape is {out_dims}, expected [batch, 1]",
                            "use a single-logit head (num_labels=1) with a dynamic batch axis")
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
    if opset > MAX_OPSET:
        raise ModelZipError(f"{path}: opset {opset} is newer than {MAX_OPSET}, which ML Commons' onnxruntime 1.16 runs",
                            f"export with opset_version<={MAX_OPSET}")
    if model.ir_version > MAX_IR_VERSION:
        raise ModelZipError(f"{path}: IR version {model.ir_version} is newer than {MAX_IR_VERSION}",
                            "export with the TorchScript exporter (dynamo=False) or lower the IR version")


def read_member(path: Path, name: str) -> bytes:
    """One file of the zip (e.g. the ONNX graph), for local scoring."""
    with zipfile.ZipFile(path) as zf:
        return zf.read(name)


def build_zip(target: Path, members: dict[str, bytes]) -> None:
    """Write a zip atomically: a reader never sees a half-written model."""
    def write(tmp: Path) -> None:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
            for name, data in members.items():
                zf.writestr(name, data)

    atomic_write(Path(target), write)
