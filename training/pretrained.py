"""A cross-encoder the user already has: any transformers folder that scores a pair with one logit.

``reranker export --from FOLDER`` turns such a folder (saved with
``save_pretrained``) into the same validated zip as a trained student. Each way a
folder can fall short gets its own one-line :class:`ModelError` naming the folder
and the fix, raised before anything is written: the user learns what to change,
not which transformers internals tripped.
"""
from __future__ import annotations

import json
from pathlib import Path

from reranker_core.errors import ModelError

from .models import META_FILE

WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "vocab.json", "spiece.model",
                   "sentencepiece.bpe.model")

#: Parity-check pairs for a folder that records none: short and long, the last one past any truncation length,
#: so onnxruntime is compared with torch on truncated input too.
PROBE_PAIRS: tuple[tuple[str, str], ...] = (
    ("cordless drill", "18V cordless drill kit with two batteries and a charger"),
    ("cordless drill", "garden hose 50 ft, kink resistant"),
    ("white interior paint", "interior white paint, 1 gallon, eggshell finish"),
    ("how do I fix a leaking faucet", "Replacing the cartridge stops most drips in single-handle faucets."),
    ("ceiling fan with light", "52 in. LED ceiling fan with remote control, brushed nickel " * 40),
)


def load_sequence_classifier(folder: Path):
    """``(model, fast tokenizer)`` from ``folder``, or a ModelError saying what the folder lacks.

    The checks run on the folder's files and config first, so a wrong folder
    fails in a second, before any weights are read.
    """
    import torch
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    folder = Path(folder)
    _check_files(folder)
    try:
        config = AutoConfig.from_pretrained(folder)
    except (OSError, ValueError, KeyError) as err:
        raise ModelError(f"{folder}/config.json is not a transformers model config ({_first_line(err)})",
                         "pass a folder written by save_pretrained()") from err
    architectures = config.architectures or []
    if architectures and not any(a.endswith("ForSequenceClassification") for a in architectures):
        raise ModelError(f"{folder} holds a {architectures[0]}, not a sequence-classification model",
                         "pass a cross-encoder (a *ForSequenceClassification with num_labels=1)")
    if config.num_labels != 1:
        raise ModelError(f"{folder} has {config.num_labels} output labels; a reranker zip needs one relevance logit",
                         "pass a cross-encoder saved with num_labels=1, or train one with `reranker train-student`")
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder)
    except (OSError, ValueError, TypeError) as err:
        raise ModelError(f"{folder} has no loadable tokenizer ({_first_line(err)})",
                         f"save the model's tokenizer beside it: tokenizer.save_pretrained('{folder}')") from err
    if not tokenizer.is_fast:
        raise ModelError(f"{folder} has only a slow tokenizer; ML Commons reads tokenizer.json",
                         f"save a fast one: AutoTokenizer.from_pretrained(..., use_fast=True)"
                         f".save_pretrained('{folder}')")
    try:
        model, info = AutoModelForSequenceClassification.from_pretrained(folder, dtype=torch.float32,
                                                                         output_loading_info=True)
    except Exception as err:  # a damaged file: OSError, RuntimeError, safetensors' own SafetensorError, ...
        raise ModelError(f"cannot load the model in {folder} ({_first_line(err)})",
                         "re-save it with model.save_pretrained()") from err
    missing = [k for k in info.get("missing_keys", []) if not k.endswith("position_ids")]
    if missing:
        raise ModelError(f"{folder} has no weights for {missing[0]} (and {len(missing) - 1} more): "
                         "that part would be random", "pass a trained cross-encoder")
    return model.eval(), tokenizer


def recorded_examples(folder: Path) -> list[tuple[str, str]]:
    """The real pairs a train-student checkpoint recorded for the parity check; none for other folders."""
    return [(q, t) for q, t in _meta(folder).get("parity_examples") or []]


def recorded_max_length(folder: Path) -> int | None:
    """The token budget a checkpoint of ours was trained with (its template's max_tokens), if any."""
    return (_meta(folder).get("template") or {}).get("max_tokens")


def max_positions(model, tokenizer) -> int:
    """The longest input the model can read: its position table and the tokenizer's own limit."""
    limits = [getattr(model.config, "max_position_embeddings", None), getattr(tokenizer, "model_max_length", None)]
    usable = [int(n) for n in limits if isinstance(n, int) and 0 < n < 1_000_000]  # unset limits read as 1e30
    return min(usable) if usable else 512


def _check_files(folder: Path) -> None:
    if not folder.is_dir():
        what = "does not exist" if not folder.exists() else "is a file, not a folder"
        raise ModelError(f"{folder} {what}", "pass the folder a cross-encoder was saved to with save_pretrained()")
    if not (folder / "config.json").is_file():
        raise ModelError(f"{folder} is not a transformers model folder (no config.json)",
                         "pass a folder written by save_pretrained(): config.json, weights and tokenizer")
    if not any((folder / name).is_file() for name in WEIGHT_FILES):
        raise ModelError(f"{folder} has no model weights (model.safetensors or pytorch_model.bin)",
                         f"save them with model.save_pretrained('{folder}')")
    if not any((folder / name).is_file() for name in TOKENIZER_FILES):
        raise ModelError(f"{folder} has no tokenizer (no tokenizer.json)",
                         f"save the model's tokenizer beside it: tokenizer.save_pretrained('{folder}')")


def _meta(folder: Path) -> dict:
    """``reranker.json`` when the folder is one of our checkpoints; {} otherwise (or when unreadable)."""
    try:
        meta = json.loads((Path(folder) / META_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return meta if isinstance(meta, dict) else {}


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
