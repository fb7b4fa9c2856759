"""Export a Hugging Face cross-encoder to the zip ML Commons deploys.

The parity check is part of export, not an afterthought: the zip is written only
after onnxruntime reproduces the torch logits on real example pairs.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import tempfile
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from reranker_core.errors import ModelZipError
from reranker_core.model_zip import CONFIG_FILE, MAX_IR_VERSION, MAX_OPSET, TOKENIZER_FILE, build_zip, validate_zip

from .models import model_inputs

log = logging.getLogger(__name__)

INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
FP32_TOLERANCE = 1e-4


@dataclass(frozen=True)
class ExportReport:
    """What export measured: where the zip is and how close onnxruntime came to torch."""

    path: Path
    max_abs_diff: float
    pairs_checked: int
    probes: bool = False  # checked on built-in probe pairs: the folder recorded no real ones


class _LogitsOnly(torch.nn.Module):
    """Positional three-input wrapper returning the [batch, 1] logits tensor."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                token_type_ids: torch.Tensor) -> torch.Tensor:
        given = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}
        inputs = model_inputs(self.model, given)
        logits = self.model(**inputs).logits
        if "token_type_ids" in inputs:
            return logits
        # no segment embeddings (MPNet): the contract still has three inputs, and the tracer drops unused ones
        return logits + 0 * token_type_ids.sum().to(logits.dtype)


def tokenizer_json(tokenizer, max_length: int) -> bytes:
    """The fast tokenizer serialized with a truncation block (ML Commons only truncates if told)."""
    backend = tokenizer.backend_tokenizer
    backend = type(backend).from_str(backend.to_str())  # copy: do not mutate the caller's tokenizer
    backend.enable_truncation(max_length=max_length, strategy="longest_first", direction="right")
    backend.no_padding()
    return backend.to_str().encode("utf-8")


EXPORT_STAGES = 4  # ONNX traced, zip staged, parity checked, zip written: what ``progress`` counts


def export_cross_encoder(model, tokenizer, target: Path, examples: Sequence[tuple[str, str]],
                         max_length: int = 128, tolerance: float = FP32_TOLERANCE,
                         progress: Callable[[int, int], None] | None = None) -> ExportReport:
    """Write ``target`` (zip) from a single-logit sequence-classification model.

    Args:
        model: a ``*ForSequenceClassification`` with ``num_labels == 1``.
        tokenizer: its fast tokenizer.
        target: where the zip goes (written atomically).
        examples: (query, document) pairs for the parity check; at least one.
        max_length: truncation length written into ``tokenizer.json``.
        tolerance: largest allowed |torch - onnxruntime| logit difference.
        progress: ``(stages done, EXPORT_STAGES)`` after each stage, so a log shows where an export is.
    """
    report = progress or (lambda done, total: None)
    if not examples:
        raise ValueError("export needs at least one (query, document) example for the parity check")
    if getattr(model.config, "num_labels", 1) != 1:
        raise ModelZipError(f"the model has {model.config.num_labels} labels", "export a single-logit cross-encoder")
    positions = getattr(model.config, "max_position_embeddings", None)
    if positions and max_length > positions:  # past them the graph fails at serving time, not here
        raise ModelZipError(f"max length {max_length} tokens is more than the {positions} positions the model reads",
                            f"set template.max_tokens to {positions} or less")
    model = model.eval().float()
    tok_bytes = tokenizer_json(tokenizer, max_length)
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = Path(tmp) / "model.onnx"
        sample = tokenizer(["query"], ["document"], return_tensors="pt", return_token_type_ids=True)
        args = tuple(sample[name] for name in INPUT_NAMES)
        dynamic = {name: {0: "batch", 1: "sequence"} for name in INPUT_NAMES}
        dynamic["logits"] = {0: "batch"}
        with torch.no_grad(), warnings.catch_warnings():
            # The tracer warns about shape checks it freezes; the parity check below is the real test.
            warnings.simplefilter("ignore")
            torch.onnx.export(_LogitsOnly(model).eval(), args, str(onnx_path), input_names=list(INPUT_NAMES),
                              output_names=["logits"], dynamic_axes=dynamic, opset_version=MAX_OPSET,
                              dynamo=False, do_constant_folding=True)
        report(1, EXPORT_STAGES)
        onnx_bytes = _cap_ir_version(onnx_path.read_bytes())
        config = json.dumps(model.config.to_dict(), sort_keys=True).encode("utf-8")
        staged = Path(tmp) / "staged.zip"
        build_zip(staged, {"model.onnx": onnx_bytes, TOKENIZER_FILE: tok_bytes, CONFIG_FILE: config})
        validate_zip(staged)
        report(2, EXPORT_STAGES)
        diff = parity(model, tokenizer, staged, examples, max_length)
        if diff > tolerance:
            raise ModelZipError(f"onnxruntime differs from torch by {diff:.2e} (> {tolerance:.0e})",
                                "the export is wrong; nothing was written")
        report(3, EXPORT_STAGES)
        build_zip(target, {"model.onnx": onnx_bytes, TOKENIZER_FILE: tok_bytes, CONFIG_FILE: config})
        report(4, EXPORT_STAGES)
    log.info("exported %s (max |torch - onnx| = %.2e over %d pairs)", target, diff, len(examples))
    return ExportReport(Path(target), diff, len(examples))


def torch_scores(model, tokenizer, examples: Sequence[tuple[str, str]], max_length: int) -> list[float]:
    """Reference logits, one pair at a time as ML Commons encodes them."""
    scores = []
    model.eval()
    with torch.no_grad():
        for query, doc in examples:
            enc = tokenizer(query, doc, truncation="longest_first", max_length=max_length, return_tensors="pt",
                            return_token_type_ids=True)
            scores.append(float(model(**model_inputs(model, enc)).logits[0, 0]))
    return scores


def parity(model, tokenizer, zip_path: Path, examples: Sequence[tuple[str, str]], max_length: int) -> float:
    """Largest |torch - onnxruntime| logit difference over ``examples``."""
    from .onnx_scorer import ZipScorer

    onnx = ZipScorer(zip_path).score(examples)
    ref = torch_scores(model, tokenizer, examples, max_length)
    return max(abs(a - b) for a, b in zip(ref, onnx))


def _cap_ir_version(raw: bytes) -> bytes:
    """ML Commons' onnxruntime 1.16 reads IR <= 9; opset 17 graphs need nothing newer."""
    import onnx

    model = onnx.load_model_from_string(raw)
    if model.ir_version > MAX_IR_VERSION:
        model.ir_version = MAX_IR_VERSION
        onnx.checker.check_model(model)
    return model.SerializeToString()


def quantize_int8(fp32_zip: Path, target: Path) -> Path:
    """Dynamic int8 quantization of a validated zip's weights (activations stay float at run time).

    Roughly a quarter of the size and faster matrix products on CPU; the accuracy
    cost is measured by the caller as an NDCG change, since logits move by more
    than any fixed tolerance.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from reranker_core.model_zip import read_member

    artifact = validate_zip(fp32_zip)
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        src.write_bytes(read_member(fp32_zip, artifact.onnx_name))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8)
        members = {"model.onnx": _cap_ir_version(dst.read_bytes()),
                   TOKENIZER_FILE: read_member(fp32_zip, TOKENIZER_FILE),
                   CONFIG_FILE: read_member(fp32_zip, CONFIG_FILE)}
        staged = Path(tmp) / "staged.zip"
        build_zip(staged, members)
        validate_zip(staged)
        build_zip(target, members)
    return Path(target)


def export_student(checkpoint: Path, target: Path, progress: Callable[[int, int], None] | None = None
                   ) -> ExportReport:
    """Export a train-student checkpoint, checking parity on the real pairs it recorded while training."""
    from .models import read_meta
    from .student import CrossEncoder

    student = CrossEncoder.load(checkpoint)
    examples = [(q, t) for q, t in read_meta(checkpoint).get("parity_examples") or []]
    if not examples:
        raise ModelZipError(f"{checkpoint} records no example pairs for the parity check", "re-run train-student")
    return export_cross_encoder(student.model, student.tokenizer, target, examples, student.template.max_tokens,
                                progress=progress)


def export_folder(folder: Path, target: Path, max_length: int | None = None, default_length: int = 128,
                  progress: Callable[[int, int], None] | None = None) -> ExportReport:
    """Export any single-logit sequence-classification folder, e.g. a pretrained cross-encoder the user has.

    Parity is checked on the real pairs the folder records (a train-student
    checkpoint does), else on built-in probe pairs. Args:
        folder: saved with ``save_pretrained``: config.json, weights, a fast tokenizer.
        target: the zip to write; left untouched when any check fails.
        max_length: truncation length for ``tokenizer.json``; None: the length the
            folder records, else ``default_length``, capped at the model's positions.
    """
    from reranker_core.errors import ModelError

    from .pretrained import PROBE_PAIRS, load_sequence_classifier, max_positions, recorded_examples, recorded_max_length

    model, tokenizer = load_sequence_classifier(folder)
    limit = max_positions(model, tokenizer)
    if max_length is not None and max_length > limit:
        raise ModelError(f"--max-length {max_length} is more than the {limit} tokens {folder} can read",
                         f"use --max-length {limit} or less")
    length = max_length or min(recorded_max_length(folder) or default_length, limit)
    examples = recorded_examples(folder)
    report = export_cross_encoder(model, tokenizer, target, examples or PROBE_PAIRS, length, progress=progress)
    return dataclasses.replace(report, probes=not examples)
