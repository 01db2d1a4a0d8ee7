"""``emergent tokens`` and ``emergent serve`` (a real uvicorn process: URL printed, Ctrl-C stops it cleanly,
a mistake is one line with a hint)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from emergent.cli import SUBCOMMANDS, main

#: the real entry point (``emergent ...``); serve and tokens registered if the CLI does not list them yet
CLI = ("import sys; from emergent.cli import SUBCOMMANDS, main; "
       "SUBCOMMANDS.setdefault('serve', ('emergent.cli.serve', 'serve')); "
       "SUBCOMMANDS.setdefault('tokens', ('emergent.cli.tokens', 'tokens')); sys.exit(main(sys.argv[1:]))")


@pytest.fixture(autouse=True)
def _registered(monkeypatch: pytest.MonkeyPatch) -> None:
    if "tokens" not in SUBCOMMANDS:
        monkeypatch.setitem(SUBCOMMANDS, "tokens", ("emergent.cli.tokens", "tokens"))


def test_tokens_create_prints_the_secret_once_and_list_never(home: Path, ws: Any, me: Any, agent: Any,
                                                             capsys: Any) -> None:
    code = main(["tokens", "create", "--as", agent.key, "--role", "agent", "--ttl", "30d", "--label", "ci",
                 "--home", str(home)])
    out = capsys.readouterr()
    assert code in (None, 0)
    secret = out.out.strip()
    assert secret.startswith("emk_") and "shown only now" in out.err and secret not in out.err
    info, principal = ws.tokens.verify(secret)
    assert principal == agent and info.role == "agent"
    assert 29.9 * 86400 < info.expires_at - info.created_at <= 30 * 86400
    main(["tokens", "list", "--json", "--home", str(home)])
    listed = capsys.readouterr().out
    assert secret not in listed
    assert [(t["principal"], t["role"], t["label"], t["active"]) for t in json.loads(listed)] == \
        [(agent.key, "agent", "ci", True)]
    main(["tokens", "revoke", info.id, "--home", str(home)])
    assert "revoked" in capsys.readouterr().out and ws.tokens.verify(secret) is None


@pytest.mark.parametrize("argv, said", [
    (["--role", "admin", "--as", "agent:researcher"], "only as a person"),
    (["--role", "agent"], "only as an agent"),
    (["--role", "viewer", "--ttl", "1000d"], "longer than the longest"),
    (["--role", "viewer", "--ttl", "soon"], "not a lifetime"),
    (["--role", "viewer", "--as", "human:root"], "only as an agent"),
])
def test_tokens_create_mistakes_are_one_line_with_a_hint(home: Path, ws: Any, agent: Any, capsys: Any,
                                                         argv: list[str], said: str) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["tokens", "create", *argv, "--home", str(home)])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and said in err and "hint:" in err and "Traceback" not in err


def _get(url: str, token: str | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_serve_prints_its_url_answers_and_stops_cleanly_on_ctrl_c(home: Path, ws: Any, me: Any) -> None:
    _, secret = ws.tokens.create(me, "viewer", by=me, ttl_s=600)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-c", CLI, "serve", "--port", "0", "--home", str(home)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        assert line.startswith("emergent serve: http://127.0.0.1:"), line + (proc.stderr.read() if proc.stderr else "")
        url = line.split()[2]
        deadline = time.monotonic() + 30
        while True:
            try:
                status, _ = _get(url + "/healthz")
                break
            except OSError:
                assert time.monotonic() < deadline, "the server never answered"
                time.sleep(0.1)
        assert status == 200
        assert _get(url + "/v1/audit/verify")[0] == 401
        status, body = _get(url + "/v1/audit/verify", secret)
        assert status == 200 and json.loads(body)["ok"] is True
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0 and "Traceback" not in err and "stopped" in err


def test_serve_on_a_port_in_use_is_one_line_with_a_hint(home: Path, ws: Any) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = subprocess.run([sys.executable, "-c", CLI, "serve", "--port", str(port), "--home", str(home)],
                           capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert f"port {port}" in r.stderr and "hint:" in r.stderr and "--port 0" in r.stderr
    bad = subprocess.run([sys.executable, "-c", CLI, "serve", "--host", "no-such-host.invalid", "--home", str(home)],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "does not resolve" in bad.stderr and "Traceback" not in bad.stderr


def test_serve_with_two_workers_shares_one_socket_and_stops_on_sigterm(home: Path, ws: Any, me: Any) -> None:
    _, secret = ws.tokens.create(me, "viewer", by=me, ttl_s=600)
    proc = subprocess.Popen([sys.executable, "-c", CLI, "serve", "--port", "0", "--workers", "2", "--home", str(home)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"},
                            text=True)
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        url = line.split()[2]
        deadline = time.monotonic() + 60
        answered = 0
        while answered < 6:
            try:
                status, body = _get(url + "/v1/audit/verify", secret)
                assert status == 200 and json.loads(body)["ok"] is True
                answered += 1
            except OSError:
                assert time.monotonic() < deadline, "the workers never answered"
                time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0 and "Traceback" not in err


def test_a_server_process_runs_blas_on_one_thread() -> None:
    """OpenBLAS's threads spin between calls: in a server they burnt a core the requests needed."""
    code = ("from emergent.cli.serve import one_blas_thread; one_blas_thread(); "
            "from threadpoolctl import threadpool_info; "
            "print([i['num_threads'] for i in threadpool_info() if i['user_api'] == 'blas'])")
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "", "OMP_NUM_THREADS": ""}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    threads = json.loads(out.stdout)
    assert threads and set(threads) == {1}
