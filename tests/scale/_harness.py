"""Real services of a scaled-out deployment, started by the scale tests and ``emergent bench api``'s
tests: an S3 API (moto's server, in its own process), a database per run on the shared PostgreSQL
(or a shared SQLite file, said in the test id), nginx in front of ``emergent serve`` instances."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from _servers import SERVE_CMD, Serve, stop, wait_port  # noqa: F401 - the scale tests import them from here

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ------------------------------------------------------------------------------ S3 (moto)
@dataclass
class S3:
    endpoint: str
    proc: subprocess.Popen[bytes]
    key_id: str = "scale-test-key"
    secret: str = "scale-test-secret"  # noqa: S105 - moto accepts any credentials

    def options(self) -> dict[str, str]:
        """The ``lance_storage_options`` of a bucket on this server."""
        return {"endpoint": self.endpoint, "region": "us-east-1", "aws_access_key_id": self.key_id,
                "aws_secret_access_key": self.secret, "allow_http": "true"}

    def client(self) -> object:
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id=self.key_id, aws_secret_access_key=self.secret)

    def bucket(self) -> str:
        """A new bucket with a random name; its ``s3://`` URI prefix is returned."""
        name = f"emergent-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)  # type: ignore[attr-defined]
        return f"s3://{name}/ws"

    def keys(self, uri: str) -> list[str]:
        bucket, _, prefix = uri.removeprefix("s3://").partition("/")
        out: list[str] = []
        paginator = self.client().get_paginator("list_objects_v2")  # type: ignore[attr-defined]
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            out.extend(o["Key"] for o in page.get("Contents", []))
        return out


@contextlib.contextmanager
def moto_s3(tmp: Path) -> Iterator[S3]:
    """moto's S3 server in its own process (the test process's GIL does not slow the instances)."""
    binary = Path(PYTHON).with_name("moto_server")
    if not binary.exists():
        pytest.fail("moto_server is not installed: `uv sync --extra dev` (moto[server])")
    port = free_port()
    log = open(tmp / "moto.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([str(binary), "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_port(port, proc, 30, "moto_server")
        yield S3(f"http://127.0.0.1:{port}", proc)
    finally:
        stop(proc)
        log.close()


# ------------------------------------------------------------------------------ SQL shared by the instances
@dataclass
class SharedSQL:
    url: str
    kind: str  # "postgres" | "sqlite-shared-file"
    drop: list[object] = field(default_factory=list)


def postgres_base() -> str | None:
    base = os.environ.get("EMERGENT_TEST_POSTGRES_URL")
    if not base:
        return None
    if base.startswith("postgresql://"):
        base = "postgresql+psycopg://" + base[len("postgresql://"):]
    return base


def sql_kinds() -> list[str]:
    """PostgreSQL when EMERGENT_TEST_POSTGRES_URL names one (two hosts share a database server);
    otherwise a SQLite file both instances open (one host only: said in the test id)."""
    return ["postgres"] if postgres_base() else ["sqlite-shared-file"]


@contextlib.contextmanager
def shared_sql(kind: str, tmp: Path) -> Iterator[SharedSQL]:
    if kind == "sqlite-shared-file":
        yield SharedSQL(f"sqlite:///{tmp / 'shared.db'}", kind)
        return
    import sqlalchemy as sa

    base = postgres_base()
    assert base is not None
    name = f"emergent_scale_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # EMERGENT_TEST_POSTGRES_URL is set: an absent server is a failure, said plainly
        admin.dispose()
        reason = str(exc).strip().splitlines()[0]
        pytest.fail(f"EMERGENT_TEST_POSTGRES_URL is set but PostgreSQL did not create a database ({reason}): start "
                    "PostgreSQL, or unset the variable to run the scale tests on a shared SQLite file", pytrace=False)
    url = sa.engine.make_url(base).set(database=name).render_as_string(hide_password=False)
    try:
        yield SharedSQL(url, kind)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


# ------------------------------------------------------------------------------ nginx
NGINX_CONF = """
worker_processes 1;
error_log {prefix}/error.log warn;
pid {prefix}/nginx.pid;
events {{ worker_connections 1024; }}
http {{
    log_format upstream '$remote_addr [$time_local] "$request" $status $upstream_addr $upstream_status '
                        '$request_time $upstream_response_time';
    access_log {prefix}/access.log upstream;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    upstream emergent {{
{servers}
        keepalive 64;
        # close idle connections before uvicorn does (its --timeout-keep-alive, 5 s by default): a
        # request sent on a connection the instance is closing fails, and a POST is not resent
        keepalive_timeout 4s;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://emergent;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Request-Id $request_id;
            proxy_connect_timeout 2s;
            proxy_read_timeout 60s;
            # retry another instance only where repeating the request is harmless: an error or a
            # timeout before the instance answered, for idempotent methods (nginx's default; POST is
            # retried only when the connection failed before anything was sent: non_idempotent is off)
            proxy_next_upstream error timeout http_502 http_503 http_504;
            proxy_next_upstream_tries 2;
            proxy_buffering off;
        }}
    }}
}}
"""


class Nginx:
    """A real nginx (Debian's ``/usr/sbin/nginx``) on a free port in front of ``upstreams``."""

    def __init__(self, prefix: Path, upstreams: list[int]) -> None:
        binary = shutil.which("nginx") or "/usr/sbin/nginx"
        if not Path(binary).exists():
            pytest.fail("nginx is not installed: run `make sysdeps` (apt-get install nginx-light)")
        prefix.mkdir(parents=True, exist_ok=True)
        self.prefix = prefix
        self.port = free_port()
        servers = "\n".join(f"        server 127.0.0.1:{p} max_fails=3 fail_timeout=5s;" for p in upstreams)
        conf = prefix / "nginx.conf"
        conf.write_text(NGINX_CONF.format(prefix=prefix, servers=servers, port=self.port))
        self.proc = subprocess.Popen([binary, "-c", str(conf), "-p", str(prefix), "-g", "daemon off;"],
                                     stdout=subprocess.DEVNULL, stderr=open(prefix / "stderr.log", "wb"))  # noqa: SIM115
        wait_port(self.port, self.proc, 20, "nginx")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        stop(self.proc, signal.SIGQUIT)


# ------------------------------------------------------------------------------ emergent serve
def instance_env(home: Path, *, sql_url: str, redis_url: str, lance_uri: str, lance_options: dict[str, str],
                 workspace_id: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of one host of the deployment (its own home: nothing local is shared)."""
    import json

    env = {k: v for k, v in os.environ.items() if not k.startswith("EMERGENT_") or k == "EMERGENT_TEST_POSTGRES_URL"}
    env.update({
        "EMERGENT_HOME": str(home), "EMERGENT_AUDIT_DIR": str(home / "audit-anchor"),
        "EMERGENT_DATABASE_URL": sql_url, "EMERGENT_REDIS_URL": redis_url,
        "EMERGENT_LANCE_URI": lance_uri, "EMERGENT_LANCE_STORAGE_OPTIONS": json.dumps(lance_options),
        "EMERGENT_WORKSPACE_ID": workspace_id, "EMERGENT_EMBEDDER": "hashing", "HF_HUB_OFFLINE": "1",
        "PYTHONUNBUFFERED": "1",
    })
    env.update(extra or {})
    return env


