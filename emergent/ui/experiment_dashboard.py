"""``ExperimentDashboard``: one experiment's effect with its confidence interval, the sequential
boundary over time, guardrails and the decision. Reads through ``ws.experiments`` only."""

from __future__ import annotations

import html
from typing import Any

import ipywidgets as widgets


def boundary_svg(history: list[dict[str, float]], width: int = 420, height: int = 180) -> str:
    """Estimated effect per look with the always-valid boundary (±) drawn around zero, as inline SVG."""
    if not history:
        return "<i>no sequential looks yet</i>"
    xs = [h["n"] for h in history]
    top = max(max(abs(h["effect"]) for h in history), max(h["boundary"] for h in history)) * 1.1 or 1.0
    x0, x1 = min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1

    def pt(n: float, y: float) -> str:
        return f"{30 + (n - x0) / (x1 - x0) * (width - 40):.1f},{height / 2 - y / top * (height / 2 - 10):.1f}"

    effect = " ".join(pt(h["n"], h["effect"]) for h in history)
    upper = " ".join(pt(h["n"], h["boundary"]) for h in history)
    lower = " ".join(pt(h["n"], -h["boundary"]) for h in history)
    return (f"<svg width='{width}' height='{height}' style='background:#fff;border:1px solid #ddd'>"
            f"<line x1='30' x2='{width - 10}' y1='{height / 2}' y2='{height / 2}' stroke='#999'/>"
            f"<polyline points='{upper}' fill='none' stroke='#cf222e' stroke-dasharray='4'/>"
            f"<polyline points='{lower}' fill='none' stroke='#cf222e' stroke-dasharray='4'/>"
            f"<polyline points='{effect}' fill='none' stroke='#0969da' stroke-width='2'/>"
            f"<text x='32' y='12' font-size='10'>effect (blue) vs always-valid boundary (red), by units</text>"
            f"<text x='32' y='{height - 4}' font-size='10'>n={x0}</text>"
            f"<text x='{width - 60}' y='{height - 4}' font-size='10'>n={x1}</text></svg>")


def render_experiment(e: dict[str, Any]) -> str:
    r = e.get("result") or {}
    test = r.get("test") or {}
    ci = r.get("bootstrap_ci")
    eff = test.get("effect")
    rows = "".join(f"<tr><td>{html.escape(g['metric'])}</td><td>{g['control']}</td><td>{g['candidate']}</td>"
                   f"<td>{g['limit']}</td><td>{'TRIPPED' if g['tripped'] else 'ok'}</td></tr>"
                   for g in r.get("guardrails", []))
    effect = "-" if eff is None else (f"{eff:+.4f} (95% CI {test['ci_low']:+.4f} … {test['ci_high']:+.4f}; bootstrap "
                                      f"{ci[0]:+.4f} … {ci[1]:+.4f})" if ci else f"{eff:+.4f}")
    return (f"<h4 style='margin:4px 0'>{html.escape(e['name'])}</h4>"
            f"<div>{e['control_version']} (control) vs <b>{e['candidate_version']}</b> · {e['mode']} · "
            f"metric {html.escape(e['metric'])} · status <b>{e['status']}</b> · decision <b>{e['decision'] or '-'}"
            f"</b></div><div>units: {r.get('n_control', 0)} control / {r.get('n_candidate', 0)} candidate · means "
            f"{r.get('mean_control')} / {r.get('mean_candidate')}</div><div>effect: {effect}</div>"
            f"<div>sequential p: {r.get('sequential_p', '-')} · SRM p: {(r.get('srm') or {}).get('p_value', '-')}"
            f"</div><div>{html.escape(r.get('reason', ''))}</div>"
            f"{boundary_svg(r.get('sequential') or [])}"
            f"<table><tr><th>guardrail</th><th>control</th><th>candidate</th><th>limit</th><th></th></tr>{rows}</table>")


class ExperimentDashboard(widgets.VBox):
    """``ExperimentDashboard(ws.experiments)``; pick an experiment, ``Analyse`` refreshes its numbers."""

    def __init__(self, experiments: Any) -> None:
        self.experiments = experiments
        self.picker = widgets.Dropdown(options=[], layout=widgets.Layout(width="100%"))
        self.view = widgets.HTML()
        self.analyse_btn = widgets.Button(description="Analyse", icon="line-chart")
        self.refresh_btn = widgets.Button(description="Refresh", icon="refresh")
        self.message = widgets.HTML()
        self.picker.observe(lambda _c: self._show(), names="value")
        self.analyse_btn.on_click(lambda _b: self._analyse())
        self.refresh_btn.on_click(lambda _b: self.refresh())
        super().__init__([self.picker, widgets.HBox([self.analyse_btn, self.refresh_btn]), self.view, self.message])
        self.refresh()

    def refresh(self) -> None:
        items = self.experiments.list()
        self.picker.options = [(f"{e['name'][:70]} · {e['status']}", e["id"]) for e in items]
        self.picker.value = items[0]["id"] if items else None
        self._show()

    def _show(self) -> None:
        eid = self.picker.value
        self.view.value = render_experiment(self.experiments.get(eid)) if eid else "<i>no experiments yet</i>"

    def _analyse(self) -> None:
        eid = self.picker.value
        if eid is None:
            return
        e = self.experiments.get(eid)
        if e["status"] != "running" or e["mode"] != "online":
            self.message.value = f"{eid} is {e['status']} ({e['mode']}): showing its stored analysis"
            return
        a = self.experiments.refresh(eid)
        self.message.value = f"analysed: {html.escape(a.reason)}"
        self._show()
