"""Fuzzed model zips: truncated, bit-flipped, re-packed with missing, renamed or corrupted members. Each is either
accepted as a zip ML Commons can deploy (and then scores) or refused with one ModelZipError line and a fix."""
from __future__ import annotations

import io
import tempfile
import zipfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reranker_core.errors import ModelZipError
from reranker_core.model_zip import validate_zip
from training.onnx_scorer import OnnxZipScorer

FUZZ = settings(max_examples=200, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def _members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def _repack(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buffer.getvalue()


mutation = st.one_of(
    st.tuples(st.just("truncate zip"), st.floats(0, 0.999)),
    st.tuples(st.just("flip zip byte"), st.floats(0, 0.999)),
    st.tuples(st.just("drop member"), st.sampled_from(["model.onnx", "tokenizer.json", "config.json"])),
    st.tuples(st.just("move into folder"), st.sampled_from(["model.onnx", "tokenizer.json"])),
    st.tuples(st.just("second onnx"), st.text("abc", min_size=1, max_size=4)),
    st.tuples(st.just("truncate onnx"), st.floats(0, 0.999)),
    st.tuples(st.just("garbage member"), st.sampled_from(["model.onnx", "tokenizer.json", "config.json"])),
)


def _mutate(members: dict[str, bytes], kind: str, arg, garbage: bytes) -> bytes:
    changed = dict(members)
    if kind == "truncate zip":
        raw = _repack(changed)
        return raw[: int(arg * len(raw))]
    if kind == "flip zip byte":
        raw = bytearray(_repack(changed))
        raw[int(arg * len(raw))] ^= 0xFF
        return bytes(raw)
    if kind == "drop member":
        changed.pop(arg, None)
    elif kind == "move into folder":
        changed[f"sub/{arg}"] = changed.pop(arg)
    elif kind == "second onnx":
        changed[f"{arg}.onnx"] = changed["model.onnx"]
    elif kind == "truncate onnx":
        changed["model.onnx"] = changed["model.onnx"][: int(arg * len(changed["model.onnx"]))]
    elif kind == "garbage member":
        changed[arg] = garbage
    return _repack(changed)


@FUZZ
@given(change=mutation, garbage=st.binary(max_size=64))
def test_a_damaged_zip_is_refused_in_one_line_or_deploys_and_scores(tiny_zip, change, garbage):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.zip"
        path.write_bytes(_mutate(_members(tiny_zip), *change, garbage))
        try:
            artifact = validate_zip(path)
        except ModelZipError as err:
            assert "\n" not in str(err) and err.fix and str(path) in str(err)
            return
        assert artifact.size_bytes == path.stat().st_size
        scores = OnnxZipScorer(path).score("cordless drill", ["18V drill kit", "paint"])
        assert len(scores) == 2
