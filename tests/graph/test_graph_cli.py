"""`emergent graph ...` on a real workspace."""

from __future__ import annotations

import json
from pathlib import Path

import networkx as nx
import pytest

from emergent.cli import main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    try:
        main(["graph", *argv])
    except SystemExit as exc:
        assert exc.code in (0, None), capsys.readouterr()
    return capsys.readouterr().out


def test_cli_syncs_searches_exports_and_renders(home: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    from emergent import Workstation

    monkeypatch.setenv("EMERGENT_EMBEDDER", "hashing")
    monkeypatch.setenv("EMERGENT_GRAPH__FOLLOW_MEMORY", "false")
    with Workstation.open(home) as ws:
        ws.memory.ingest([{"text": "Jolene works at Google.", "meta": {"speaker": "Caroline"}},
                          {"text": "Jolene moved to Lisbon.", "meta": {"speaker": "Jolene"}}], scope="a/u")
    assert json.loads(run(capsys, "sync"))["memories"] == 2
    out = json.loads(run(capsys, "search", "Where is Jolene?", "--json"))
    assert out["nodes"][0]["label"] == "Jolene" and out["memories"]
    assert "Jolene" in run(capsys, "show", "jolene", "--scope", "a/u")
    run(capsys, "export", str(tmp_path / "g.graphml"))
    assert nx.read_graphml(tmp_path / "g.graphml").number_of_nodes() >= 3
    assert "nodes" in run(capsys, "render", str(tmp_path / "g.html"))
    assert "cdn.jsdelivr" not in (tmp_path / "g.html").read_text()
    with pytest.raises(SystemExit) as exc:
        main(["graph", "export", str(tmp_path / "x"), "--format", "csv"])
    assert exc.value.code == 2 and "graphml or json" in capsys.readouterr().err
