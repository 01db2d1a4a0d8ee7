"""Shared fixtures: isolated workspaces and real services started by the test session.

Redis: a real ``redis-server`` on a free port with its data directory in tmp (never the machine's
own Redis). PostgreSQL: only where ``EMERGENT_TEST_POSTGRES_URL`` names one.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from _servers import RedisServer

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "tests" / "artifacts"

# Several tests press Ctrl-C (SIGINT) on a CLI, a chat or a run, as a person at a terminal would. A
# suite started in the background by a shell without job control (`make test &` in a script, nohup)
# inherits SIGINT *ignored*: Python then installs no KeyboardInterrupt handler, and neither do the
# processes the tests start. Give SIGINT its interactive meaning back for this process and its children.
import signal  # noqa: E402

if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("EMERGENT_") and key != "EMERGENT_TEST_POSTGRES_URL":
            monkeypatch.delenv(key)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    (tmp_path / "home").mkdir(exist_ok=True)  # the CLI refuses a workspace directory that does not exist
    monkeypatch.setenv("EMERGENT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("EMERGENT_AUDIT_DIR", str(tmp_path / "audit-anchor"))


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> Iterator[str]:
    import redis

    if not (redis_server.dir / "redis.pid").exists():  # a fault test stopped it
        redis_server.start()
    client = redis.Redis.from_url(redis_server.url)
    for _ in range(50):
        try:
            client.flushall()
            break
        except redis.ConnectionError:
            redis_server.start()
            time.sleep(0.1)
    yield redis_server.url
    client.close()


def _sql_urls() -> list[str]:
    urls = ["sqlite"]
    if os.environ.get("EMERGENT_TEST_POSTGRES_URL"):
        urls.append("postgres")
    return urls


@pytest.fixture(params=_sql_urls())
def sql_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """SQLite always; PostgreSQL too when EMERGENT_TEST_POSTGRES_URL is set (a fresh schema each)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.db'}"
        return
    import sqlalchemy as sa

    base = os.environ["EMERGENT_TEST_POSTGRES_URL"]
    if base.startswith("postgresql://"):
        base = "postgresql+psycopg://" + base[len("postgresql://"):]
    schema = f"t_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(base)
    with engine.begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    sep = "&" if "?" in base else "?"
    yield f"{base}{sep}options=-csearch_path%3D{schema}"
    with engine.begin() as conn:
        conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
    engine.dispose()


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def ws(home: Path) -> Iterator[object]:
    """A workstation on embedded defaults with the fast hashing embedder."""
    from emergent import Workstation

    w = Workstation.open(home, embedder="hashing")
    yield w
    w.close()


@pytest.fixture
def me(ws: object) -> object:
    """The human principal of the test's OS user, issued by ``ws``."""
    return ws.principal  # type: ignore[attr-defined]


@pytest.fixture
def agent(ws: object, me: object) -> object:
    """An agent principal (``agent:researcher``) created by the human ``me``."""
    return ws.principals.agent("researcher", created_by=me)  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


# ---------------------------------------------------------------- LoCoMo-shaped conversations
# Written by tests/fixtures/locomo_like.py: no test reads a LoCoMo file from outside the repository.
def _locomo_like() -> ModuleType:
    if "locomo_like" not in sys.modules:
        path = Path(__file__).resolve().parent / "fixtures" / "locomo_like.py"
        spec = importlib.util.spec_from_file_location("locomo_like", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["locomo_like"] = module
        spec.loader.exec_module(module)
    return sys.modules["locomo_like"]


@pytest.fixture(scope="session")
def locomo_like() -> ModuleType:
    """The generator module (``generate``, ``write``, ``Account``)."""
    return _locomo_like()


@pytest.fixture(scope="module")
def locomo_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    """A LoCoMo-format file of 4 generated conversations and the generator's account of it."""
    path = tmp_path_factory.mktemp("locomo") / "locomo-like.json"
    return path, _locomo_like().write(path, 4)
