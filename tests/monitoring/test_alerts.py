"""The alert rules (Prometheus format) only name metrics /metrics exports, and cover the failures that matter."""

from __future__ import annotations

import re
from typing import Any

import yaml
from fastapi.testclient import TestClient

from emergent.monitoring import ALERT_RULES as RULES

_KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "bool",
             "offset", "inf", "nan"}
_SUFFIXES = ("_bucket", "_count", "_sum")


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects: identifiers that are not functions (followed by
    ``(``), keywords, label names (inside ``{...}`` or ``by (...)``), strings, durations or numbers."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings
    text = re.sub(r"\{[^}]*\}", "{}", text)  # label matchers
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)  # label lists
    text = re.sub(r"\[[^\]]*\]", "[]", text)  # range durations
    names = set()
    for m in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        name, rest = m.group(0), text[m.end():].lstrip()
        if rest.startswith("(") or name.lower() in _KEYWORDS:
            continue
        if re.fullmatch(r"\d", text[m.start() - 1:m.start()] or "x"):  # 1e-9, 5m
            continue
        names.add(name)
    return names


def base_name(name: str) -> str:
    for suffix in _SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(RULES.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def test_the_parser_finds_metric_names_and_nothing_else() -> None:
    expr = ('histogram_quantile(0.95, sum by (le, route) (rate(foo_seconds_bucket{route!~"/a|b"}[5m]))) > 0.2 '
            'and on(instance) max without (job) (bar_total) / clamp_min(baz, 1e-9) or time() - qux offset 5m')
    assert metric_names(expr) == {"foo_seconds_bucket", "bar_total", "baz", "qux"}


def test_every_rule_is_well_formed_and_names_only_exported_metrics() -> None:
    from emergent.monitoring.metrics import EXPORTED

    found = rules()
    assert len(found) >= 8
    for rule in found:
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule
        assert re.fullmatch(r"Emergent[A-Za-z0-9]+", rule["alert"])
        assert rule["labels"]["severity"] in {"page", "ticket"}
        assert rule["annotations"]["summary"]
        if "for" in rule:
            assert re.fullmatch(r"\d+[smh]", rule["for"])
        assert rule["expr"].count("(") == rule["expr"].count(")"), rule["alert"]
        names = metric_names(rule["expr"])
        assert names, rule["alert"]
        unknown = {n for n in names if base_name(n) not in EXPORTED and n not in EXPORTED}
        assert not unknown, f"{rule['alert']} names {unknown}, which /metrics does not export"


def test_the_failures_that_matter_each_have_a_rule() -> None:
    by_metric: dict[str, list[str]] = {}
    for rule in rules():
        for name in metric_names(rule["expr"]):
            by_metric.setdefault(base_name(name), []).append(rule["alert"])
    for needed in ("emergent_http_requests_total",  # error rate
                   "emergent_http_request_duration_seconds",  # p95 over 200 ms
                   "emergent_store_up",  # readiness
                   "emergent_approvals_pending_oldest_age_seconds",
                   "emergent_job_runs_failed_total",
                   "emergent_audit_verify_ok", "emergent_audit_verify_failures_total",
                   "emergent_http_rate_limited_total"):
        assert needed in by_metric, needed
    p95 = next(r for r in rules() if "emergent_http_request_duration_seconds_bucket" in r["expr"])
    assert "histogram_quantile(0.95" in p95["expr"] and "> 0.2" in p95["expr"]


def test_every_name_the_rules_may_use_is_really_in_a_scrape(client: TestClient, app: Any, ws: Any, me: Any) -> None:
    """EXPORTED is not a wish list: after some traffic each name is in /metrics."""
    from emergent.monitoring.metrics import EXPORTED

    ws.tools.call("files.write", {"path": "a.txt", "content": "x"}, principal=me)
    app.state.monitor.audit.verify_now()
    client.get("/healthz")
    text = client.get("/metrics").text
    present = set(re.findall(r"^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*)", text, re.M))
    present |= {base_name(n) for n in re.findall(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)", text, re.M)}
    present |= {n + "_total" for n in present}  # a counter's TYPE line names it without _total
    missing = EXPORTED - present
    assert not missing, missing
