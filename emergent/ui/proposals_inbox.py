"""``ProposalsInbox``: pending proposals with their evidence, impact and diff; approve or reject with a
reason. It acts only through ``ws.proposals`` (the service writes events and audit entries)."""

from __future__ import annotations

import html
import json
from typing import Any

import ipywidgets as widgets


def _pre(text: str) -> str:
    return (f"<pre style='max-height:260px;overflow:auto;background:#f6f8fa;padding:6px;font-size:11px'>"
            f"{html.escape(text)}</pre>")


def render_proposal(p: dict[str, Any]) -> str:
    """HTML of one proposal: header, rationale, evidence (numbers + query), impact, expected, diff."""
    ev_rows = []
    for e in p.get("evidence") or []:
        inner = e.get("evidence", {})
        ev_rows.append(f"<li>{html.escape(e.get('summary', ''))}<br><small>query: <code>"
                       f"{html.escape(str(inner.get('query', '-')))}</code></small>"
                       f"{_pre(json.dumps(inner.get('numbers', {}), indent=1, default=str))}</li>")
    impact = p.get("impact") or {}
    score = f" · approval probability {p['score']:.2f}" if p.get("score") is not None else ""
    parts = [
        f"<h4 style='margin:4px 0'>{html.escape(p['title'])}</h4>",
        f"<div><b>{p['status']}</b> · {p['kind']} → {html.escape(p['target'])} · risk {p['risk']} · "
        f"confidence {p['confidence']:.2f} · written by <code>{html.escape(p['strategy'])}</code>{score}</div>",
        f"<p>{html.escape(p['rationale'])}</p>",
        f"<b>Evidence</b><ul>{''.join(ev_rows) or '<li>none</li>'}</ul>",
        f"<b>Impact</b>: components {', '.join(impact.get('components', [])) or '-'}; keys "
        f"{', '.join(impact.get('config_keys', [])) or '-'}{_pre(json.dumps(impact.get('estimate', {}), indent=1))}",
        f"<b>Expected</b>: {html.escape(json.dumps(p.get('expected') or {}))}",
        f"<br><b>Change</b>{_pre(json.dumps(p['change'], indent=1, default=str))}",
    ]
    if p.get("diff"):
        parts.append(f"<b>Diff</b>{_pre(p['diff'])}")
    return "".join(parts)


class ProposalsInbox(widgets.VBox):
    """``ProposalsInbox(ws.proposals, by=ws.principal)`` in a notebook cell; ``refresh()`` re-reads the store.

    Decisions are ``by``'s (a human: the service refuses agents and services)."""

    def __init__(self, proposals: Any, *, by: Any = None, status: str = "pending") -> None:
        self.proposals = proposals
        self.status = status
        self.by = by
        self.header = widgets.HTML()
        self.picker = widgets.Select(options=[], rows=8, layout=widgets.Layout(width="100%"))
        self.detail = widgets.HTML()
        self.reason = widgets.Text(placeholder="reason (required to reject)", layout=widgets.Layout(width="60%"))
        self.approve_btn = widgets.Button(description="Approve", button_style="success", icon="check")
        self.reject_btn = widgets.Button(description="Reject", button_style="danger", icon="times")
        self.refresh_btn = widgets.Button(description="Refresh", icon="refresh")
        self.message = widgets.HTML()
        self.picker.observe(lambda _c: self._show(), names="value")
        self.approve_btn.on_click(lambda _b: self._decide(True))
        self.reject_btn.on_click(lambda _b: self._decide(False))
        self.refresh_btn.on_click(lambda _b: self.refresh())
        super().__init__([self.header, self.picker, self.detail,
                          widgets.HBox([self.reason, self.approve_btn, self.reject_btn, self.refresh_btn]),
                          self.message])
        self.refresh()

    def refresh(self) -> None:
        items = self.proposals.rank(self.status) if self.status == "pending" else self.proposals.list(self.status)
        m = self.proposals.metrics()
        rate = "-" if m["approval_rate"] is None else f"{m['approval_rate']:.0%}"
        self.header.value = (f"<b>Proposals</b> · {len(items)} {self.status} · approval rate {rate} · "
                             f"{m['mean_per_week']:.1f}/week")
        self.picker.options = [(f"{p['title'][:90]} [{p['risk']}]", p["id"]) for p in items]
        self.picker.value = items[0]["id"] if items else None
        self._show()

    def _show(self) -> None:
        pid = self.picker.value
        self.detail.value = render_proposal(self.proposals.get(pid)) if pid else "<i>nothing to decide</i>"
        for b in (self.approve_btn, self.reject_btn):
            b.disabled = pid is None

    def _decide(self, approve: bool) -> None:
        pid = self.picker.value
        if pid is None:
            return
        try:
            if approve:
                self.proposals.approve(pid, by=self.by, reason=self.reason.value)
            else:
                self.proposals.reject(pid, by=self.by, reason=self.reason.value)
        except Exception as exc:  # a clear message in the panel instead of a traceback
            self.message.value = f"<span style='color:#cf222e'>{html.escape(str(exc))}</span>"
            return
        self.message.value = f"{'approved' if approve else 'rejected'} {pid}"
        self.reason.value = ""
        self.refresh()
