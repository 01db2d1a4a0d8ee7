"""Faults: a Redis that goes away, two processes sharing one Redis, a process killed mid-write."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from emergent import Workstation
from emergent.errors import StoreUnavailableError


def test_redis_stopped_mid_run_gives_a_clear_error_and_no_silent_loss(home, redis_server, redis_url):
    ws = Workstation.open(home, embedder="hashing", redis_url=redis_url)
    kept = ws.memory.remember("written while redis was up")
    redis_server.stop()
    try:
        with pytest.raises(StoreUnavailableError, match="unavailable") as exc:
            ws.memory.remember("written while redis was down")
        assert "on_stm_failure='ltm'" in str(exc.value)
        assert ws.memory.ltm.count() == 0  # nothing half-written anywhere
    finally:
        redis_server.start()
    assert kept.id  # the earlier write is not claimed lost: Redis kept it in memory until stopped
    ws.close()


def test_declared_fallback_writes_long_term_memory_while_redis_is_down(home, redis_server, redis_url):
    ws = Workstation.open(home, embedder="hashing", redis_url=redis_url, stm_fallback="ltm")
    redis_server.stop()
    try:
        rec = ws.memory.remember("must survive the outage")
        assert rec.tier.value == "ltm"
        assert [h.id for h in ws.memory.recall("survive the outage")] == [rec.id]
        assert ws.memory.get(rec.id).text == "must survive the outage"
    finally:
        redis_server.start()
    ws.close()


def test_two_processes_on_one_redis_see_each_others_short_term_memory(tmp_path, redis_url):
    home = tmp_path / "shared"
    writer = textwrap.dedent(f"""
        from emergent import Workstation
        ws = Workstation.open({str(home)!r}, embedder="hashing", redis_url={redis_url!r})
        print(ws.memory.remember("written by process one about orchids").id)
    """)
    reader = textwrap.dedent(f"""
        from emergent import Workstation
        ws = Workstation.open({str(home)!r}, embedder="hashing", redis_url={redis_url!r})
        print(ws.memory.recall("orchids", k=1)[0].id)
    """)
    wid = subprocess.run([sys.executable, "-c", writer], capture_output=True, text=True, check=True).stdout.strip()
    rid = subprocess.run([sys.executable, "-c", reader], capture_output=True, text=True, check=True).stdout.strip()
    assert wid and rid == wid


def test_sigkill_while_writing_ltm_keeps_every_committed_memory(home):
    script = textwrap.dedent(f"""
        import sys
        from emergent import Workstation
        ws = Workstation.open({str(home)!r}, embedder="hashing")
        i = 0
        while True:
            ws.memory.ingest([f"batch {{i}} item {{j}} about volcanoes" for j in range(50)])
            print(i, flush=True)
            i += 1
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    committed = -1
    deadline = time.time() + 60
    while committed < 5 and time.time() < deadline:
        committed = int(proc.stdout.readline())
    time.sleep(0.05)  # land the kill inside a write as often as not
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    ws = Workstation.open(home, embedder="hashing")
    n = ws.memory.ltm.count()
    assert n >= (committed + 1) * 50 and n % 50 == 0  # whole batches only
    assert ws.memory.recall("volcanoes", k=3)
    ws.memory.ingest(["still writable after the crash"])
    ws.close()
