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
    subjects = ["*", "agent:*", "agent:a", "agent:b", "role:ops", "human:x"]
    rules = [Rule(rnd.choice(subjects), rnd.choice([*tools, "tool1*", "*", "tool?"]),
                  rnd.choice(["allow", "allow", "ask", "deny"]), rnd.choice(["*", "/a/*", "/b/c"]),
                  max_cost=rnd.choice([None, 1.0])) for _ in range(1500)]
    m = Matrix(rules)
    for _ in range(500):
        req = Request(rnd.choice(["agent:a", "agent:b", "agent:c", "human:x"]), rnd.choice(tools),
                      rnd.choice(["read", "write"]), rnd.choice(["/a/1", "/b/c", "/z"]), rnd.choice([0.5, 2.0]),
                      roles=rnd.choice([(), ("role:ops",)]))
        assert m.decide(req).effect == m.decide_linear(req).effect


def test_confidence_threshold_turns_allow_into_ask(gate, human):
    gate.add_rule("agent:*", "files.write", "allow", by=human)
    assert gate.explain("agent:a", "files.write", side_effect="write", confidence=0.9).effect == "allow"
    d = gate.explain("agent:a", "files.write", side_effect="write", confidence=0.3)
    assert d.effect == "ask" and d.source == "confidence" and "0.60 threshold" in d.reason
    gate.set_threshold("write", 0.2, by=human)
    assert gate.explain("agent:a", "files.write", side_effect="write", confidence=0.3).effect == "allow"


def test_a_missing_confidence_counts_as_zero_for_agents(gate, human, bot):
    gate.add_rule("agent:*", "files.write", "allow", by=human)
    d = gate.decide_for(bot, "files.write", "write")
    assert d.effect == "ask" and d.source == "confidence" and "counts as 0" in d.reason
    assert gate.decide_for(bot, "files.write", "write", confidence=0.7).effect == "allow"


def test_pause_and_suspension_stop_non_read_actions_only(gate, human):
    gate.add_rule("*", "*", "allow", by=human)
    gate.pause(by=human, reason="incident")
    d = gate.explain("agent:a", "files.write", side_effect="write", confidence=1)
    assert d.effect == "deny" and d.source == "pause" and "incident" in d.reason
    assert gate.explain("agent:a", "files.read", side_effect="read").effect == "allow"
    assert gate.explain("agent:a", "http_get", side_effect="read", network=True).source == "pause"
    assert gate.explain("service:scheduler", "files.write", side_effect="write").source == "pause"
    assert gate.explain(human.key, "files.write", side_effect="write").effect == "allow"
    gate.resume(by=human)
    gate.suspend("agent:a", reason="misbehaved", by=human)
    assert gate.explain("agent:a", "files.write", side_effect="write", confidence=1).source == "suspension"
    assert gate.explain("agent:b", "files.write", side_effect="write", confidence=1).effect == "allow"
    gate.unsuspend("agent:a", by=human)
    assert gate.explain("agent:a", "files.write", side_effect="write", confidence=1).effect == "allow"


def test_human_override_beats_the_matrix_until_it_expires(gate, clock, human):
    gate.add_rule("agent:a", "shell", "deny", by=human)
    oid = gate.override("agent:a", "shell", "allow", ttl=60, by=human, reason="one-off migration")
    d = gate.explain("agent:a", "shell", side_effect="write", confidence=1)
    assert d.effect == "allow" and d.source == "override" and oid in d.reason
    clock.advance(61)
    assert gate.explain("agent:a", "shell", side_effect="write", confidence=1).effect == "deny"


def test_defaults_follow_the_kind_of_principal(gate):
    assert gate.explain("human:ana", "files.write", side_effect="write").effect == "allow"
    assert gate.explain("human:ana", "files.delete", side_effect="destructive").effect == "allow"
    assert gate.explain("service:scheduler", "slack.post", side_effect="external").effect == "allow"
    assert gate.explain("service:scheduler", "files.delete", side_effect="destructive").effect == "ask"
    assert gate.explain("agent:x", "files.write", side_effect="write", confidence=1).effect == "ask"
    assert gate.explain("agent:x", "files.read").effect == "allow"


def test_execute_actions_always_ask_for_agents_and_services_whatever_the_rules(gate, human):
    gate.add_rule("*", "notebook.run", "allow", by=human)
    gate.override("agent:x", "notebook.run", "allow", by=human, reason="trying to bypass")
    for key in ("agent:x", "service:scheduler"):
        d = gate.explain(key, "notebook.run", side_effect="execute", confidence=1)
        assert d.effect == "ask" and d.source == "execute"
    assert gate.explain(human.key, "notebook.run", side_effect="execute").effect == "allow"
    gate.add_rule("agent:y", "notebook.run", "deny", by=human)
    assert gate.explain("agent:y", "notebook.run", side_effect="execute").effect == "deny"


def test_yaml_round_trip_and_changes_seen_by_another_process(gate, store, clock, human):
    from emergent.autonomy.service import Autonomy

    text = """
thresholds: {external: 0.9}
defaults: {write: deny}
rules:
  - {subject: "agent:*", tool: "http_get", effect: allow, resource: "https://docs.*"}
  - {subject: "role:admin", tool: "*", effect: allow, side_effects: [destructive]}
"""
    assert gate.import_yaml(text, by=human) == 2
    other = Autonomy(store, clock=clock)
    assert len(other.rules()) == 2 and other.snapshot().thresholds["external"] == 0.9
    assert other.explain("agent:a", "files.write", side_effect="write").effect == "deny"
    rules, settings = load_yaml(other.export_yaml())
    assert [r.to_dict() for r in rules] == [r.to_dict() for r in gate.rules()] and settings["defaults"]["write"] == "deny"
    with pytest.raises(ValidationError, match="unknown policy section"):
        load_yaml("colour: red")


def test_rule_subjects_must_name_a_principal_or_a_role():
    for bad in ("cli", "user:ana", "notebook", "agent", "scheduler"):
        with pytest.raises(ValidationError, match="names no principal or role"):
            Rule(bad, "*", "allow")
    for good in ("*", "agent:*", "human:ana", "service:scheduler", "role:ops"):
        Rule(good, "*", "allow")
