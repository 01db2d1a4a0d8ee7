"""Re-embed long-term memory with another model (``emergent memory reembed``).

Every row of ``memories`` and ``memories_archive`` is read in batches (large texts decompressed),
embedded with the new model and written to a new table beside the old one; the old tables stay
untouched until every new table is complete. Then each table is swapped (a directory rename on a
local LanceDB; drop-and-copy on object storage), the indexes are rebuilt and the workspace's
recorded embedder id is updated. A run killed before the swap leaves the store as it was (the
half-written ``*__reembed`` tables are dropped by the next run). Table version history starts
afresh with the new tables: take a backup first if you may want to go back.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pyarrow as pa
import zstandard

from emergent.config import load_settings
from emergent.errors import ConfigError
from emergent.memory._codec import SEALED, Sealer
from emergent.memory.ltm import SCHEMA_VERSION, memory_schema, migrate_tables, unseal_payload
from emergent.providers.embeddings import Embedder, get_embedder
from emergent.stores.lance import IndexPolicy, LanceStore

TABLES = {"memories": False, "memories_archive": True}  # name -> has archive columns
SUFFIX = "__reembed"
_ZD = zstandard.ZstdDecompressor()


def _texts(batch: pa.RecordBatch, cipher: Sealer | None = None) -> list[str]:
    texts = batch.column("text").to_pylist()
    payloads = batch.column("payload").to_pylist()
    ids = batch.column("id").to_pylist()
    out = []
    for i, t, p in zip(ids, texts, payloads, strict=True):
        if p is None:
            out.append(t)
        elif p[:4] == SEALED:  # sealed at rest: opened to embed, copied over still sealed
            if cipher is None:
                raise ConfigError(f"memory {i!r} is sealed: re-embedding needs the key ring",
                                  hint="set EMERGENT_SECURITY__ENCRYPT=true (and the KEK it was sealed with)")
            out.append(unseal_payload(cipher, i, p)[0])
        else:
            out.append(_ZD.decompress(p).decode())
    return out


def _copy_with_vectors(old: Any, new: Any, embedder: Embedder, batch_size: int, cipher: Sealer | None = None) -> int:
    n = old.count_rows()
    if not n:
        return 0
    columns = [f.name for f in new.schema if f.name != "vector"]
    data = old.search().select(columns).limit(n).to_arrow()
    done = 0
    for batch in data.to_batches(max_chunksize=batch_size):
        vectors = embedder.embed(_texts(batch, cipher))
        arrays = {name: batch.column(name) for name in columns}
        arrays["vector"] = pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), embedder.dim)
        new.add(pa.Table.from_pydict({f.name: arrays[f.name] for f in new.schema}, schema=new.schema))
        done += batch.num_rows
    return done


def _swap(store: LanceStore, name: str, schema: pa.Schema) -> Any:
    tmp = name + SUFFIX
    uri = store.uri.removeprefix("file://")
    if "://" not in uri and (Path(uri) / f"{tmp}.lance").is_dir():
        live, new = Path(uri) / f"{name}.lance", Path(uri) / f"{tmp}.lance"
        aside = Path(uri) / f".{name}.lance.old"
        shutil.rmtree(aside, ignore_errors=True)
        if live.exists():
            os.replace(live, aside)
        os.replace(new, live)
        shutil.rmtree(aside, ignore_errors=True)
        return store.db.open_table(name)
    data = store.db.open_table(tmp).to_arrow()
    store.db.drop_table(name)
    table = store.db.create_table(name, data=data, schema=schema)
    store.db.drop_table(tmp)
    return table


def reembed(home: str | Path | None, embedder_id: str, *, batch_size: int = 256, cipher: Sealer | None = None,
            **options: Any) -> int:
    """Re-embed every long-term and archived memory of the workspace at ``home`` with
    ``embedder_id`` (``minilm``, ``hashing``, ``openai:<model>``); returns the rows re-embedded.

    Afterwards open the workstation with the same ``EMERGENT_EMBEDDER``. ``cipher``: long-term memory's
    (``memory.ltm``) when it is sealed at rest.
    """
    if batch_size < 1:
        raise ConfigError(f"batch_size must be positive, got {batch_size}")
    settings = load_settings(home)
    path = settings.workspace()
    store = LanceStore(settings.lance_uri or path / "lance")
    if embedder_id.startswith("openai"):
        options.setdefault("base_url", settings.embed_base_url or settings.llm_base_url)
        options.setdefault("api_key", settings.embed_api_key or settings.llm_api_key)
    embedder = get_embedder(embedder_id, **options)
    names = store.table_names()
    for name in TABLES:
        if name + SUFFIX in names:
            store.db.drop_table(name + SUFFIX)  # a previous run died before its swap
    migrate_tables(store, *[store.db.open_table(name) for name in TABLES if name in names])  # the columns copied
    total = 0
    schemas = {name: memory_schema(embedder.dim, archive=archive) for name, archive in TABLES.items()}
    for name, schema in schemas.items():
        new = store.open_table(name + SUFFIX, schema, SCHEMA_VERSION)
        if name in names:
            total += _copy_with_vectors(store.db.open_table(name), new, embedder, batch_size, cipher)
    policy = IndexPolicy(ann_threshold=settings.memory.ann_index_threshold)
    for name, schema in schemas.items():
        table = _swap(store, name, schema)
        store.maintain(table, policy, force=True)
    store.set_meta({"embedder": embedder.id, "dim": str(embedder.dim)})
    return total
