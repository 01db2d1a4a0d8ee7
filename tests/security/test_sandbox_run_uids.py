"""Runs started as root do not share a user: each gets a user id of its own, so one run cannot signal,
trace or starve another (a run as the shared ``nobody`` could ``kill -1`` every other run, and its
fork bomb used up the process limit, which counts per user, for every other run)."""

from __future__ import annotations

import os
import threading

from emergent.tools.sandbox import RUN_UIDS, Limits, Sandbox, isolation

INFO = isolation()
UID = "import os; print(os.getuid(), os.getgid())"


def test_each_run_runs_as_a_user_id_of_its_own() -> None:
    box = Sandbox(Limits(timeout=10))
    seen = [tuple(int(x) for x in box.python(UID).stdout.split()) for _ in range(3)]
    if INFO["drops_privileges"]:
        assert len({uid for uid, _ in seen}) == 3, seen
        assert all(RUN_UIDS[0] <= uid < RUN_UIDS[1] and gid == uid for uid, gid in seen), seen
    else:  # not root: the program runs as the user who started it (the level says so)
        assert {uid for uid, _ in seen} == {os.getuid()}


def test_attack_a_run_killing_every_process_it_may_signal_does_not_reach_a_concurrent_run() -> None:
    box = Sandbox(Limits(timeout=20))
    started = threading.Event()
    out: dict[str, object] = {}

    def victim() -> None:
        started.set()
        out["victim"] = box.python("import time\nfor _ in range(30):\n    time.sleep(0.05)\nprint('survived')")

    t = threading.Thread(target=victim)
    t.start()
    started.wait()
    attacker = box.python("import os, signal, time\ntime.sleep(0.3)\n"
                          "try:\n    os.kill(-1, signal.SIGKILL)\nexcept OSError as exc:\n    print('refused', exc)\n")
    t.join(30)
    victim_run = out["victim"]
    assert victim_run.ok and victim_run.stdout.strip() == "survived", (victim_run, attacker)  # type: ignore[attr-defined]


def test_attack_a_fork_bomb_at_its_process_limit_does_not_stop_another_run_from_starting() -> None:
    bomb_box = Sandbox(Limits(timeout=20, processes=16))
    ready = threading.Event()
    out: dict[str, object] = {}
    bomb = ("import os, time\nkids = []\n"
            "while True:\n    try:\n        pid = os.fork()\n    except OSError:\n        break\n"
            "    if pid == 0:\n        time.sleep(3)\n        os._exit(0)\n    kids.append(pid)\n"
            "print(len(kids), flush=True)\ntime.sleep(2)\n")

    def run_bomb() -> None:
        ready.set()
        out["bomb"] = bomb_box.python(bomb)

    t = threading.Thread(target=run_bomb)
    t.start()
    ready.wait()
    other = Sandbox(Limits(timeout=20, processes=16))
    runs = [other.shell("echo a | cat | tr a b") for _ in range(5)]
    t.join(30)
    assert all(r.ok and r.stdout.strip() == "b" for r in runs), runs
