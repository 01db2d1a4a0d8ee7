"""Two ``emergent serve`` hosts behind nginx on shared PostgreSQL, Redis and LanceDB on S3: what one
host accepted, the other serves; a host killed mid-load loses no write the client saw acknowledged."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import httpx
from conftest import Deployment


def _remember(client: httpx.Client, base: str, headers: dict[str, str], text: str, tier: str = "stm") -> str:
    r = client.post(f"{base}/v1/memory", json={"text": text, "kind": "semantic", "tier": tier}, headers=headers)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def _recall_ids(client: httpx.Client, base: str, headers: dict[str, str], query: str) -> list[str]:
    r = client.get(f"{base}/v1/memory/recall", params={"query": query, "k": 5}, headers=headers)
    assert r.status_code == 200, r.text
    return [item["id"] for item in r.json()["items"]]


def test_memory_written_through_one_instance_is_recalled_through_the_other(deployment: Deployment) -> None:
    a, b = deployment.instances
    h = deployment.headers
    with httpx.Client(timeout=30) as c:
        # short-term memory (Redis): the other host answers with it at once
        stm_id = _remember(c, a.url, h, "the backup window is 02:00 to 03:00 UTC")
        assert stm_id in _recall_ids(c, b.url, h, "when is the backup window")
        assert c.get(f"{b.url}/v1/memory/{stm_id}", headers=h).json()["text"].startswith("the backup window")
        # long-term memory (LanceDB on S3), after b has loaded its hot index: b's version check catches up
        assert _recall_ids(c, b.url, h, "the deployment was initialised")
        ltm_id = _remember(c, a.url, h, "the on-call rotation changes every Tuesday", tier="ltm")
        deadline = time.monotonic() + 10
        while ltm_id not in _recall_ids(c, b.url, h, "on-call rotation Tuesday"):
            assert time.monotonic() < deadline, "b never recalled a's long-term write"
            time.sleep(0.2)
        # and through the balancer, whichever host answers
        for _ in range(4):
            assert stm_id in _recall_ids(c, deployment.nginx.url, h, "backup window")  # type: ignore[union-attr]


def test_killing_one_instance_mid_load_loses_no_acknowledged_write(deployment: Deployment) -> None:
    """Writers post through nginx while one host is SIGKILLed; every 201 the client got is then read
    back through the survivor. POSTs in flight on the killed host fail (502: nginx does not resend a
    non-idempotent request it already sent); reads are retried on the other host."""
    victim, survivor = deployment.instances
    base, h = deployment.nginx.url, deployment.headers  # type: ignore[union-attr]
    run = uuid.uuid4().hex[:8]
    acked: dict[str, str] = {}
    failed_writes: list[Any] = []
    failed_reads: list[Any] = []
    lock = threading.Lock()
    stop = threading.Event()

    def writer(n: int) -> None:
        with httpx.Client(timeout=30) as c:
            i = 0
            while not stop.is_set():
                text = f"load {run} writer {n} item {i}"
                tier = "ltm" if i % 4 == 3 else "stm"
                try:
                    r = c.post(f"{base}/v1/memory", json={"text": text, "tier": tier}, headers=h)
                    if r.status_code == 201:
                        with lock:
                            acked[r.json()["id"]] = text
                    else:
                        failed_writes.append(r.status_code)
                except httpx.HTTPError as exc:
                    failed_writes.append(repr(exc))
                i += 1

    def reader() -> None:
        with httpx.Client(timeout=30) as c:
            while not stop.is_set():
                try:
                    r = c.get(f"{base}/v1/memory/recall", params={"query": f"load {run}", "k": 3}, headers=h)
                    if r.status_code != 200:
                        failed_reads.append(r.status_code)
                except httpx.HTTPError as exc:
                    failed_reads.append(repr(exc))

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(3)] + [threading.Thread(target=reader)]
    for t in threads:
        t.start()
    try:
        deadline = time.monotonic() + 60
        while len(acked) < 30:
            assert time.monotonic() < deadline, f"only {len(acked)} writes acknowledged; failures {failed_writes[:5]}"
            time.sleep(0.05)
        victim.kill()
        before = len(acked)
        while len(acked) < before + 30:  # the survivor keeps accepting
            assert time.monotonic() < deadline, f"survivor stalled at {len(acked) - before}; {failed_writes[-5:]}"
            time.sleep(0.05)
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    assert victim.proc.poll() is not None
    log = (deployment.nginx.prefix / "access.log").read_text()  # type: ignore[union-attr]
    by_victim = sum(1 for line in log.splitlines()
                    if '"POST /v1/memory ' in line and f" 201 127.0.0.1:{victim.port} " in line)
    assert by_victim >= 5, "the killed instance had acknowledged too few writes for the test to mean anything"
    assert len(failed_writes) <= 3, failed_writes  # at most the writers' requests in flight on the victim
    assert len(failed_reads) <= 1, failed_reads
    restarted = deployment.restart(0)  # the host comes back on its port (and the next test has two)
    for host in (survivor, restarted):
        missing = _missing(host.url, h, acked)
        assert not missing, f"{host.name}: {len(missing)} of {len(acked)} acknowledged writes gone: {missing[:5]}"


def _missing(base: str, headers: dict[str, str], acked: dict[str, str]) -> list[tuple[str, int]]:
    """The acknowledged writes ``base`` does not answer with (id, status)."""
    out = []
    with httpx.Client(timeout=30) as c:
        for mid, text in acked.items():
            r = c.get(f"{base}/v1/memory/{mid}", headers=headers)
            if r.status_code != 200 or r.json()["text"] != text:
                out.append((mid, r.status_code))
    return out
