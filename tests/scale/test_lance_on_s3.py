"""Long-term memory on object storage: LanceDB tables in a bucket of moto's real S3 server, written
and read by one workstation and by two processes (two hosts) at once; what cannot work there is
refused with a hint."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from _harness import PYTHON, S3, instance_env

from emergent.errors import BackupError, ConfigError, StoreUnavailableError

WORKER = str(Path(__file__).with_name("_worker.py"))


def test_memory_on_s3_remember_consolidate_recall(tmp_path: Path, s3: S3) -> None:
    from emergent import Workstation

    uri = s3.bucket()
    ws = Workstation.open(tmp_path / "home", embedder="hashing", lance_uri=uri, lance_storage_options=s3.options())
    try:
        rec = ws.memory.remember("the staging cluster lives in eu-west-3", importance=0.9, kind="semantic")
        ws.memory.recall("staging cluster")  # an access: promotion needs importance or accesses
        report = ws.memory.consolidate(principal=ws.principal)
        assert report.promoted >= 1
        assert ws.memory.ltm.count() >= 1
        hits = ws.memory.recall("where is the staging cluster", k=3)
        assert hits and "eu-west-3" in hits[0].record.text
        assert hits[0].record.id == rec.id or "eu-west-3" in hits[0].record.text
    finally:
        ws.close()
    keys = s3.keys(uri)
    assert any("/memories.lance/_versions/" in k for k in keys), keys[:20]
    assert not (tmp_path / "home" / "lance").exists()  # nothing of LanceDB was written locally


class Worker:
    """A workstation in its own process (another host), driven one JSON line at a time."""

    def __init__(self, home: Path, env: dict[str, str]) -> None:
        home.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen([PYTHON, WORKER], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=open(home / "worker.log", "wb"), text=True)  # noqa: SIM115
        self.log = home / "worker.log"

    def ready(self) -> Worker:
        assert self.read() == {"ready": True}
        return self

    def read(self) -> Any:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise AssertionError(f"worker exited: {self.log.read_text(errors='replace')[-2000:]}")
        out = json.loads(line)
        assert "error" not in out, out
        return out

    def send(self, **cmd: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()

    def call(self, **cmd: Any) -> Any:
        self.send(**cmd)
        return self.read()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.send(op="quit")
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def test_two_processes_share_long_term_memory_on_s3(tmp_path: Path, s3: S3) -> None:
    """Two hosts: each its own home and database, one bucket. Concurrent writes all land (Lance's
    conditional-put commits, no lost update); each sees the other's writes, also after it has
    loaded its hot index (its version check catches up within FRESH_S + the read consistency)."""
    uri = s3.bucket()
    workers = []
    for name in ("a", "b"):
        home = tmp_path / name
        env = instance_env(home, sql_url=f"sqlite:///{home / 'emergent.db'}", redis_url="", lance_uri=uri,
                           lance_options=s3.options(), workspace_id="shared")
        env.pop("EMERGENT_REDIS_URL")
        workers.append(Worker(home, env))  # both start at once
    try:
        a, b = (w.ready() for w in workers)
        a.call(op="remember", texts=["seed memory about the lighthouse keeper"])  # creates the tables
        assert b.call(op="recall", q="lighthouse keeper")["texts"][0].startswith("seed memory")  # b's hot index loaded
        # both write at once, 12 memories each in 4 commits, racing for the same table versions
        batches = [[f"WHO wrote fact {i} {j} about topic WHO{i}{j}" for j in range(3)] for i in range(4)]
        for batch in batches:
            a.send(op="remember", texts=[t.replace("WHO", "a") for t in batch])
            b.send(op="remember", texts=[t.replace("WHO", "b") for t in batch])
        written = {"a": [], "b": []}
        for _ in batches:
            written["a"] += a.read()["ids"]
            written["b"] += b.read()["ids"]
        # no write lost; each process's table handle re-reads the latest version once a second
        deadline = time.monotonic() + 5
        while (counts := (a.call(op="count")["ltm"], b.call(op="count")["ltm"])) != (25, 25):
            assert time.monotonic() < deadline, counts
            time.sleep(0.2)
        # a writes once more; b (hot index loaded, partition current) must find it without a restart
        new_id = a.call(op="remember", texts=["the harbour master keeps a red notebook"])["ids"][0]
        deadline = time.monotonic() + 10
        seen_after = None
        while time.monotonic() < deadline:
            if new_id in b.call(op="recall", q="harbour master red notebook", k=3)["ids"]:
                seen_after = 10 - (deadline - time.monotonic())
                break
            time.sleep(0.2)
        assert seen_after is not None, "b never recalled what a wrote"
        assert seen_after < 5.0  # FRESH_S (2 s) + read consistency (1 s) + a recall
        assert written["b"][0] in a.call(op="recall", q="b wrote fact 0 0 about topic b00", k=5)["ids"]
    finally:
        for w in workers:
            w.close()


def test_backup_of_s3_workspace_is_refused_with_a_hint(tmp_path: Path, s3: S3) -> None:
    from emergent import Workstation

    ws = Workstation.open(tmp_path / "home", embedder="hashing", lance_uri=s3.bucket(),
                          lance_storage_options=s3.options())
    try:
        ws.memory.remember("something to back up", tier="ltm")
        with pytest.raises(BackupError) as err:
            ws.backup(by=ws.principal)
        assert "versioning" in err.value.hint
    finally:
        ws.close()


def test_missing_bucket_is_refused_with_a_hint(tmp_path: Path, s3: S3) -> None:
    from emergent.stores.lance import LanceStore

    with pytest.raises(StoreUnavailableError) as err:
        LanceStore("s3://emergent-no-such-bucket-here/ws", storage_options=s3.options())
    assert "bucket does not exist" in str(err.value) and "create the bucket" in err.value.hint


def test_unreachable_object_store_is_refused_with_a_hint(tmp_path: Path, s3: S3) -> None:
    from _harness import free_port

    from emergent.stores.lance import LanceStore

    options = {**s3.options(), "endpoint": f"http://127.0.0.1:{free_port()}"}
    with pytest.raises(StoreUnavailableError) as err:
        LanceStore(s3.bucket(), storage_options=options)
    assert "endpoint" in err.value.hint


def test_storage_options_without_an_object_store_uri_are_refused(tmp_path: Path) -> None:
    from emergent.stores.lance import LanceStore

    with pytest.raises(ConfigError) as err:
        LanceStore(tmp_path / "lance", storage_options={"region": "us-east-1"})
    assert "s3://" in err.value.hint
    with pytest.raises(ConfigError):
        LanceStore("s4://bucket/x")


def test_point_in_time_rewind_and_forget_work_on_s3(tmp_path: Path, s3: S3) -> None:
    """The backup route docs/deploy.md names for S3 (LanceDB's own versions) works there."""
    from emergent import Workstation

    ws = Workstation.open(tmp_path / "home", embedder="hashing", lance_uri=s3.bucket(),
                          lance_storage_options=s3.options())
    try:
        kept = ws.memory.remember("herons nest in the reeds", tier="ltm")
        time.sleep(1.1)  # rewind resolves times to the last version committed at or before them
        before = time.time()
        time.sleep(1.1)
        ws.memory.remember("egrets winter in the south", tier="ltm")
        assert ws.memory.ltm.count() == 2
        ws.memory.rewind(before, principal=ws.principal)
        assert ws.memory.ltm.count() == 1
        assert [h.record.id for h in ws.memory.recall("where do herons nest", k=3)] == [kept.id]
        assert ws.memory.forget(kept.id, principal=ws.principal) == 1
        assert ws.memory.ltm.count() == 0
    finally:
        ws.close()


def test_erasure_on_s3_leaves_no_object_in_the_bucket_holding_the_text(tmp_path: Path, s3: S3) -> None:
    """The right to erasure on object storage: after `retention.erase`, no current object of the
    bucket holds the erased text (older table versions cleaned up, fragments rewritten). A bucket with
    versioning keeps noncurrent copies: docs/deploy.md says how long (its lifecycle rule)."""
    from emergent import Workstation

    uri = s3.bucket()
    ws = Workstation.open(tmp_path / "home", embedder="hashing", lance_uri=uri, lance_storage_options=s3.options())
    try:
        secret = ws.memory.remember("the door code of the archive is heron-4242", tier="ltm")
        kept = ws.memory.remember("egrets winter in the south", tier="ltm")
        ws.memory.recall("door code")  # the text index is built and holds the text too
        report = ws.retention.erase(by=ws.principal, reason="erasure request 17", ids=[secret.id])
        assert report.count == 1
        assert [h.record.id for h in ws.memory.recall("egrets winter", k=5)] == [kept.id]
    finally:
        ws.close()
    bucket = uri.removeprefix("s3://").split("/")[0]
    client = s3.client()
    holding = [k for k in s3.keys(uri)
               if b"heron-4242" in client.get_object(Bucket=bucket, Key=k)["Body"].read()]  # type: ignore[attr-defined]
    assert not holding, holding


def test_sealed_memories_on_s3_are_read_by_another_host_with_the_same_kek(tmp_path: Path, s3: S3) -> None:
    """Encryption at rest across hosts: the data keys live in the shared database wrapped by the KEK,
    so every host needs the same EMERGENT_SECURITY__KEK (docs/deploy.md); the bucket holds no
    plaintext, and a host with another KEK is refused rather than reading garbage."""
    import base64
    import os

    uri = s3.bucket()
    shared_sql = f"sqlite:///{tmp_path / 'shared.db'}"

    def env(name: str, kek: bytes) -> dict[str, str]:
        e = instance_env(tmp_path / name, sql_url=shared_sql, redis_url="", lance_uri=uri,
                         lance_options=s3.options(), workspace_id="sealed",
                         extra={"EMERGENT_SECURITY__ENCRYPT": "true",
                                "EMERGENT_SECURITY__KEK": base64.b64encode(kek).decode()})
        e.pop("EMERGENT_REDIS_URL")
        return e

    from emergent.stores.sql import SQLStore

    SQLStore(shared_sql).dispose()  # the operator migrates the shared file before the hosts start (each home would
    # take its own migration lock)
    kek = os.urandom(32)
    a, b = Worker(tmp_path / "a", env("a", kek)), Worker(tmp_path / "b", env("b", kek))  # both start at once
    try:
        mid = a.ready().call(op="remember", texts=["the vault combination is 7-19-33 kestrel"])["ids"][0]
        assert mid in b.ready().call(op="recall", q="vault combination kestrel")["ids"]
    finally:
        a.close()
        b.close()
    bucket = uri.removeprefix("s3://").split("/")[0]
    client = s3.client()
    assert not [k for k in s3.keys(uri)
                if b"kestrel" in client.get_object(Bucket=bucket, Key=k)["Body"].read()]  # type: ignore[attr-defined]
    stranger = Worker(tmp_path / "c", env("c", os.urandom(32)))
    try:
        stranger.ready()
        stranger.send(op="recall", q="vault combination kestrel")
        assert stranger.proc.stdout is not None
        answer = json.loads(stranger.proc.stdout.readline())
        assert "error" in answer and "ConfigError" in answer["error"], answer
    finally:
        stranger.close()



def _listed_without_manifest(s3: S3) -> str:
    """A bucket whose meta table has its first object but no manifest: a creation in flight or cut short."""
    uri = s3.bucket()
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    s3.client().put_object(Bucket=bucket, Key=f"{prefix}/emergent_meta.lance/_transactions/0-creating.txn",  # type: ignore[attr-defined]
                           Body=b"")
    return uri


def test_a_table_another_host_is_still_creating_is_waited_for_not_reported_missing(tmp_path: Path, s3: S3) -> None:
    """On object storage a table is listed from its first object, before its first manifest lands;
    a second host opening it in between waits for the creator instead of failing with 'not found'
    (seen in CI: two workers opening one new bucket at once)."""
    import threading

    from emergent.stores.lance import LanceStore

    uri = _listed_without_manifest(s3)
    reader = LanceStore(uri, storage_options=s3.options())
    assert "emergent_meta" in reader.table_names()  # listed, not yet openable
    creator = LanceStore(uri, storage_options=s3.options())
    schema = LanceStore._META.with_metadata({"emergent.schema_version": "1"})
    timer = threading.Timer(1.0, lambda: creator.db.create_table("emergent_meta", schema=schema, mode="create"))
    timer.start()  # the creator's manifest lands a second later
    try:
        reader.set_meta({"dim": "256"})
    finally:
        timer.join()
    creator.set_meta({"embedder": "hashing"})
    assert reader.get_meta() == {"embedder": "hashing", "dim": "256"}


def test_a_creation_cut_short_on_object_storage_is_created_over(tmp_path: Path, s3: S3) -> None:
    """Nobody commits the listed table's first manifest: after the wait it is created, not refused forever."""
    from emergent.stores.lance import LanceStore

    store = LanceStore(_listed_without_manifest(s3), storage_options=s3.options())
    store.CREATING_WAIT_S = 0.5
    assert store.get_meta() == {}  # nothing there yet
    store.set_meta({"embedder": "hashing"})
    assert store.get_meta() == {"embedder": "hashing"}
