"""With a cipher (encryption at rest) a request's arguments are sealed in SQL from the first write on,
bound to the request's id; every read opens them and the digest binding is unchanged."""

import pytest
import sqlalchemy as sa

from emergent.autonomy.approvals import ApprovalQueue
from emergent.errors import ConfigError, IntegrityError
from emergent.principals import Principals
from emergent.security.crypto import KeyRing, new_kek

D = "d" * 64
SECRET = "wire the payroll to account zanzibar-7431"


@pytest.fixture
def directory(store, clock):
    return Principals(store, clock=clock)


@pytest.fixture
def boss(directory):
    return directory.os_user()


@pytest.fixture
def bot(directory, boss):
    return directory.agent("a", created_by=boss)


@pytest.fixture
def cipher(store, clock):
    return KeyRing(store, kek=new_kek(), clock=clock).cipher("sql.approvals")


def _raw(store, aid):
    with store.connect() as conn:
        return conn.execute(sa.text("SELECT args FROM approvals WHERE id = :id"), {"id": aid}).scalar_one()


def test_sealed_args_never_reach_sql_in_plaintext_and_read_back_on_every_path(store, clock, directory, boss, bot,
                                                                              cipher):
    q = ApprovalQueue(store, principals=directory, clock=clock, cipher=cipher)
    a = q.request(principal=bot, tool="memory.remember@1.1.0", args={"text": SECRET, "scope": "s"}, reason="r",
                  digest=D)
    raw = _raw(store, a.id)
    assert raw.startswith("egc1:") and "zanzibar" not in raw
    assert a.args["text"] == SECRET and q.get(a.id).args["text"] == SECRET
    assert [p.args["text"] for p in q.list()] == [SECRET]
    q.approve(a.id, by=boss)
    assert [p.args["text"] for p in q.decided(0)] == [SECRET]
    assert q.consume(a.id, principal=bot, tool="memory.remember@1.1.0", digest=D, files={},
                     call_id="c1").status == "consumed"
    # redaction opens, redacts and re-seals
    red = q.redact(a.id, ["text"], by=boss)
    assert red.args["text"] != SECRET and q.get(a.id).args == red.args and red.digest == D
    raw = _raw(store, a.id)
    assert raw.startswith("egc1:") and "zanzibar" not in raw
    # with encryption off a sealed request is an error, never ciphertext read as arguments
    with pytest.raises(ConfigError):
        ApprovalQueue(store, principals=directory, clock=clock).get(a.id)


def test_erasure_finds_the_text_inside_sealed_requests(store, clock, directory, boss, bot, cipher):
    q = ApprovalQueue(store, principals=directory, clock=clock, cipher=cipher)
    a = q.request(principal=bot, tool="memory.remember@1.1.0", args={"text": SECRET}, reason="r", digest=D)
    assert q.erase_content([SECRET], by=boss, reason="gdpr") == [a.id]
    got = q.get(a.id)
    assert got.status == "rejected" and got.args["text"] != SECRET
    assert "zanzibar" not in _raw(store, a.id)


def test_a_sealed_args_value_moved_to_another_request_does_not_open(store, clock, directory, bot, cipher):
    q = ApprovalQueue(store, principals=directory, clock=clock, cipher=cipher)
    a = q.request(principal=bot, tool="t@1.0.0", args={"text": SECRET}, reason="r", digest=D)
    b = q.request(principal=bot, tool="t@1.0.0", args={"text": "harmless"}, reason="r", digest=D)
    with store.begin() as conn:
        conn.execute(sa.text("UPDATE approvals SET args = :a WHERE id = :id"), {"a": _raw(store, a.id), "id": b.id})
    with pytest.raises(IntegrityError):
        q.get(b.id)


def test_without_a_cipher_args_are_stored_as_before(store, clock, directory, bot):
    q = ApprovalQueue(store, principals=directory, clock=clock)
    a = q.request(principal=bot, tool="t@1.0.0", args={"text": "plain"}, reason="r", digest=D)
    assert _raw(store, a.id) == '{"text": "plain"}'
