"""Concurrency probe (issue 11, finding 5): N threads of remember + recall on one workspace for D seconds.

Run: .venv/bin/python tests/faults/concurrency_probe.py [--seconds 30] [--threads 4] [--home DIR]

Prints one JSON object: operations, errors, remember/recall p50/p99/max (ms), and how long
``Workstation.close()`` took. Not collected by pytest (a measurement, not a test).
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import threading
import time
from pathlib import Path

WORDS = ["lake", "sensor", "nitrate", "sample", "drift", "meeting", "spectrometer", "calibration", "cluster", "backup", "field", "trip", "water", "north", "south", "reading", "firmware", "paper", "draft", "vial", "order", "key", "rotate"]


def _pct(xs: list[float], p: float) -> float:
    if not xs:
        return 0.0
    xs = sorted(xs)
    return round(xs[min(len(xs) - 1, int(p / 100 * len(xs)))], 2)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--home", default=None)
    args = ap.parse_args()
    from emergent import Workstation

    home = Path(args.home) if args.home else Path(tempfile.mkdtemp(prefix="emergent-probe-"))
    ws = Workstation.open(home, embedder="hashing")
    ws.memory.ingest([f"seed note {i} about the {WORDS[i % len(WORDS)]} and the {WORDS[(i * 7) % len(WORDS)]}"
                      for i in range(2000)])
    lat: dict[str, list[float]] = {"remember": [], "recall": []}
    errors: list[str] = []
    stop = time.monotonic() + args.seconds
    lock = threading.Lock()

    def worker(n: int) -> None:
        i = 0
        mine: dict[str, list[float]] = {"remember": [], "recall": []}
        while time.monotonic() < stop:
            w1, w2 = WORDS[(n * 31 + i) % len(WORDS)], WORDS[(n * 17 + i * 3) % len(WORDS)]
            try:
                t0 = time.perf_counter()
                ws.memory.remember(f"thread {n} note {i}: the {w1} near the {w2}", importance=0.3 + (i % 7) / 10)
                t1 = time.perf_counter()
                ws.memory.recall(f"{w1} {w2}", k=5)
                t2 = time.perf_counter()
                mine["remember"].append((t1 - t0) * 1e3)
                mine["recall"].append((t2 - t1) * 1e3)
            except Exception as exc:  # noqa: BLE001 - counted and reported
                with lock:
                    errors.append(f"{type(exc).__name__}: {exc}"[:200])
            i += 1
        with lock:
            for k, v in mine.items():
                lat[k].extend(v)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(args.threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    t0 = time.perf_counter()
    ws.close()
    close_s = time.perf_counter() - t0
    out = {"seconds": args.seconds, "threads": args.threads, "errors": len(errors), "first_errors": errors[:3],
           "close_s": round(close_s, 3)}
    for k, v in lat.items():
        out[k] = {"n": len(v), "p50_ms": _pct(v, 50), "p99_ms": _pct(v, 99), "max_ms": round(max(v, default=0), 1)}
    print(json.dumps(out))
    if not args.home:
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
