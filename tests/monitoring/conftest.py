"""Fixtures of the monitoring tests: the real API app over a tmp workstation, tokens, collected spans."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient


@pytest.fixture
def app(ws: Any) -> Any:
    from emergent.api import create_app

    return create_app(ws)


@pytest.fixture
def client(app: Any) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


@pytest.fixture
def viewer(ws: Any, me: Any) -> dict[str, str]:
    """Headers of a viewer token of the human ``me``."""
    return {"Authorization": f"Bearer {ws.tokens.create(me, 'viewer', by=me, ttl_s=3600)[1]}"}


@pytest.fixture
def spans(app: Any) -> Any:
    """The spans the app finishes from now on (an InMemorySpanExporter on the app's own provider)."""
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    app.state.monitor.tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


def samples(text: str, name: str) -> dict[frozenset[tuple[str, str]], float]:
    """The samples of metric ``name`` in an exposition, keyed by their labels."""
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[frozenset[tuple[str, str]], float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name:
                out[frozenset(s.labels.items())] = s.value
    return out


def value(text: str, name: str, **labels: str) -> float | None:
    """The value of the one sample of ``name`` whose labels include ``labels`` (None when absent)."""
    hits = [v for k, v in samples(text, name).items() if set(labels.items()) <= k]
    assert len(hits) <= 1, f"{name}{labels} matches {len(hits)} samples"
    return hits[0] if hits else None
