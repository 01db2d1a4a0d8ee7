"""The permission matrix and the gate around it: deny-overrides, conditions, thresholds, pause."""

import random

import pytest

from emergent.autonomy.policy import Matrix, Request, Rule, load_yaml
from emergent.errors import ValidationError


def test_deny_overrides_ask_overrides_allow_and_the_winner_is_named():
    m = Matrix([Rule("agent:*", "files.*", "allow", id="r1"), Rule("role:intern", "files.delete", "ask", id="r2"),
                Rule("agent:bob", "*", "deny", resource="/secret/*", id="r3")])
    d = m.decide(Request("agent:bob", "files.delete", "destructive", "/secret/x", roles=("role:intern",)))
    assert d.effect == "deny" and d.rule_id == "r3" and "deny overrides" in d.reason
    d = m.decide(Request("agent:bob", "files.delete", "destructive", "/public/x", roles=("role:intern",)))
    assert d.effect == "ask" and d.rule_id == "r2"
    d = m.decide(Request("agent:ann", "files.read", "read", "/public/x"))
    assert d.effect == "allow" and d.rule_id == "r1" and "r1" in d.explain()


def test_conditions_on_side_effect_and_cost():
    m = Matrix([Rule("*", "http_*", "allow", max_cost=1.0, id="cheap"),
                Rule("*", "http_*", "ask", min_cost=1.0, side_effects=frozenset({"external"}), id="pricey")])
    assert m.decide(Request("agent:a", "http_post", "external", cost=0.5)).rule_id == "cheap"
    assert m.decide(Request("agent:a", "http_post", "external", cost=5)).rule_id == "pricey"
    d = m.decide(Request("agent:a", "http_post", "write", cost=5))
    assert d.source == "default" and d.effect == "ask"


def test_bad_rules_are_refused():
    with pytest.raises(ValidationError, match="allow, ask, deny"):
        Rule("*", "*", "maybe")
    with pytest.raises(ValidationError, match="side-effect"):
        Rule.from_dict({"subject": "*", "tool": "*", "effect": "allow", "side_effects": "read,explode"})
    with pytest.raises(ValidationError, match="unknown rule field"):
        Rule.from_dict({"subject": "*", "tool": "*", "effect": "allow", "colour": "red"})


def test_indexed_decisions_equal_a_linear_scan_over_many_rules():
    rnd = random.Random(7)
    tools = [f"tool{i}" for i in range(200)]
    subjects = ["*", "agent:*", "agent:a", "agent:b", "role:ops", "user:x"]
    rules = [Rule(rnd.choice(subjects), rnd.choice([*tools, "tool1*", "*", "tool?"]),
                  rnd.choice(["allow", "allow", "ask", "deny"]), rnd.choice(["*", "/a/*", "/b/c"]),
                  max_cost=rnd.choice([None, 1.0])) for _ in range(1500)]
    m = Matrix(rules)
    for _ in range(500):
        req = Request(rnd.choice(["agent:a", "agent:b", "agent:c", "user:x"]), rnd.choice(tools),
                      rnd.choice(["read", "write"]), rnd.choice(["/a/1", "/b/c", "/z"]), rnd.choice([0.5, 2.0]),
                      roles=rnd.choice([(), ("role:ops",)]))
        assert m.decide(req).effect == m.decide_linear(req).effect


def test_confidence_threshold_turns_allow_into_ask(gate):
    gate.add_rule("agent:*", "files.write", "allow")
    assert gate.explain("agent:a", "files.write", side_effect="write", confidence=0.9).effect == "allow"
    d = gate.explain("agent:a", "files.write", side_effect="write", confidence=0.3)
    assert d.effect == "ask" and d.source == "confidence" and "0.60 threshold" in d.reason
    gate.set_threshold("write", 0.2)
    assert gate.explain("agent:a", "files.write", side_effect="write", confidence=0.3).effect == "allow"


def test_pause_and_suspension_stop_non_read_actions_only(gate):
    gate.add_rule("*", "*", "allow")
    gate.pause(by="user:boss", reason="incident")
    d = gate.explain("agent:a", "files.write", side_effect="write")
    assert d.effect == "deny" and d.source == "pause" and "incident" in d.reason
    assert gate.explain("agent:a", "files.read", side_effect="read").effect == "allow"
    gate.resume()
    gate.suspend("agent:a", reason="misbehaved")
    assert gate.explain("agent:a", "files.write", side_effect="write").source == "suspension"
    assert gate.explain("agent:b", "files.write", side_effect="write").effect == "allow"
    gate.unsuspend("agent:a")
    assert gate.explain("agent:a", "files.write", side_effect="write").effect == "allow"


def test_human_override_beats_the_matrix_until_it_expires(gate, clock):
    gate.add_rule("agent:a", "shell", "deny")
    oid = gate.override("agent:a", "shell", "allow", ttl=60, by="user:boss", reason="one-off migration")
    d = gate.explain("agent:a", "shell", side_effect="write")
    assert d.effect == "allow" and d.source == "override" and oid in d.reason
    clock.advance(61)
    assert gate.explain("agent:a", "shell", side_effect="write").effect == "deny"


def test_trusted_humans_get_allow_by_default_except_destructive(gate):
    assert gate.explain("user:ana", "files.write", side_effect="write").effect == "allow"
    assert gate.explain("user:ana", "files.delete", side_effect="destructive").effect == "ask"
    assert gate.explain("agent:x", "files.write", side_effect="write").effect == "ask"


def test_yaml_round_trip_and_changes_seen_by_another_process(gate, store, clock):
    from emergent.autonomy.service import Autonomy

    text = """
thresholds: {external: 0.9}
defaults: {write: deny}
rules:
  - {subject: "agent:*", tool: "http_get", effect: allow, resource: "https://docs.*"}
  - {subject: "role:admin", tool: "*", effect: allow, side_effects: [destructive]}
"""
    assert gate.import_yaml(text) == 2
    other = Autonomy(store, clock=clock)
    assert len(other.rules()) == 2 and other.snapshot().thresholds["external"] == 0.9
    assert other.explain("agent:a", "files.write", side_effect="write").effect == "deny"
    rules, settings = load_yaml(other.export_yaml())
    assert [r.to_dict() for r in rules] == [r.to_dict() for r in gate.rules()] and settings["defaults"]["write"] == "deny"
    with pytest.raises(ValidationError, match="unknown policy section"):
        load_yaml("colour: red")
