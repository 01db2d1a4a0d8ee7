"""The rendered graph loads in real Chromium with zero failed or off-machine requests, isolated in an iframe."""

from __future__ import annotations

from pathlib import Path

import networkx as nx
import pytest

from emergent.graph.render import render

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
pytestmark = pytest.mark.e2e


def graph() -> nx.MultiDiGraph:
    g = nx.MultiDiGraph()
    labels = ["Zoë", "東京", "<img src=https://example.com/x.png>", "L" * 600, "Alice", "Bob"]
    for i, lb in enumerate(labels):
        g.add_node(f"n{i}", label=lb, type="entity")
    for i in range(len(labels) - 1):
        g.add_edge(f"n{i}", f"n{i + 1}", rel="knows", confidence=0.5)
    g.add_edge("n0", "n0", rel="self", confidence=0.5)
    g.add_edge("n0", "n1", rel="knows", confidence=0.9)
    return g


def test_rendered_graph_loads_offline_and_does_not_leak_css(tmp_path: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian chromium is not installed: run `make sysdeps`")
    r = render(graph(), communities={"n0": 0, "n1": 1}, max_nodes=5)
    assert "cdn" not in r.html.lower().split("<script")[0] and r.shown_nodes == 5 and "5 of 6" in r.note
    host = tmp_path / "host.html"
    host.write_text("<html><head><style>p{color:rgb(1,2,3)}</style></head><body><p id='probe'>notebook</p>"
                    + r._repr_html_() + "</body></html>", "utf-8")
    requests: list[str] = []
    failed: list[str] = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page()
        page.on("request", lambda req: requests.append(req.url))
        page.on("requestfailed", lambda req: failed.append(req.url))
        page.goto(host.as_uri())
        frame = page.frames[1]
        frame.wait_for_function("typeof network !== 'undefined' && Object.keys(network.body.nodes).length > 0",
                                timeout=20_000)
        shown = frame.evaluate("Object.keys(network.body.nodes).length")
        canvas = frame.locator("canvas").count()
        probe = page.evaluate("getComputedStyle(document.getElementById('probe')).color")
        body_margin = page.evaluate("getComputedStyle(document.body).marginTop")
        browser.close()
    assert shown == 5 and canvas >= 1
    assert failed == []
    assert all(u.startswith(("file:", "data:", "about:")) for u in requests), requests
    assert probe == "rgb(1, 2, 3)" and body_margin == "8px"  # the graph's CSS stayed in its frame
