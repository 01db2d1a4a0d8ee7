"""One process of a workspace whose LanceDB is on S3, driven line by line from a test (JSON in, JSON out):
two of these are two hosts sharing the tables. Settings come from the environment (EMERGENT_*)."""

from __future__ import annotations

import json
import sys
import time


def main() -> None:
    from emergent import Workstation

    ws = Workstation.open()
    mem = ws.memory
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        cmd = json.loads(line)
        op = cmd["op"]
        try:
            if op == "remember":
                ids = [mem.remember(t, tier=cmd.get("tier", "ltm"), kind="semantic").id for t in cmd["texts"]]
                out: object = {"ids": ids}
            elif op == "recall":
                t0 = time.perf_counter()
                hits = mem.recall(cmd["q"], k=cmd.get("k", 5))
                out = {"ids": [h.record.id for h in hits], "texts": [h.record.text for h in hits],
                       "ms": (time.perf_counter() - t0) * 1000}
            elif op == "count":
                out = {"ltm": mem.ltm.count()}
            elif op == "quit":
                break
            else:
                out = {"error": f"unknown op {op}"}
        except Exception as exc:  # reported to the test, which fails on it
            out = {"error": f"{type(exc).__name__}: {exc}"}
        print(json.dumps(out), flush=True)
    ws.close()


if __name__ == "__main__":
    main()
