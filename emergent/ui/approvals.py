"""``ApprovalsInbox``: approval requests with approve / reject / run buttons and a reason box, and the
``PolicyEditor``. Both act through ``ws.autonomy`` (and ``ws.tools`` to run an approved call) as
the principal they were given (``ws.principal``: the person at the keyboard), never as a name.

An approval is bound to the digest of exactly what will run (tool version, arguments, the bytes of
the files the call reads or runs): the inbox shows that digest and the files, and **run** runs the
approved call once, as its requester (``ws.tools.resume``). A call still waiting in a notebook
resumes by itself when approved.
"""

from __future__ import annotations

import html
import json
from typing import Any

import ipywidgets as widgets

from emergent.principals import Principal
from emergent.ui.marketplace import error_html, require_principal


class ApprovalsInbox(widgets.VBox):
    """``ApprovalsInbox(ws.autonomy, by=ws.principal, tools=ws.tools)``: pending and approved
    requests; approve or reject as ``by`` (a human), run an approved one (needs ``tools``)."""

    def __init__(self, autonomy: Any, *, by: Principal, tools: Any = None) -> None:
        self.autonomy = autonomy
        self.by = require_principal(by, "ApprovalsInbox(ws.autonomy, by=ws.principal, tools=ws.tools)")
        self.tools = tools
        self.picker = widgets.Select(options=[], rows=6, description="requests")
        self.detail = widgets.HTML()
        self.reason = widgets.Text(placeholder="reason (recorded in the audit trail)", description="reason")
        self.approve_button = widgets.Button(description="approve", button_style="success")
        self.reject_button = widgets.Button(description="reject", button_style="danger")
        self.run_button = widgets.Button(description="run approved call", button_style="primary",
                                         tooltip="run it once, as its requester (ws.tools.resume)")
        self.refresh_button = widgets.Button(description="refresh")
        self.pause_toggle = widgets.ToggleButton(description="pause autonomy", value=autonomy.paused)
        self.status = widgets.HTML()
        self.output = widgets.HTML()
        self.picker.observe(lambda _: self._show(), names="value")
        self.approve_button.on_click(lambda _: self.decide(True))
        self.reject_button.on_click(lambda _: self.decide(False))
        self.run_button.on_click(lambda _: self.run())
        self.refresh_button.on_click(lambda _: self.refresh())
        self.pause_toggle.observe(lambda ch: self._pause(ch["new"]), names="value")
        super().__init__([widgets.HBox([self.refresh_button, self.pause_toggle]), self.picker, self.detail,
                          self.reason, widgets.HBox([self.approve_button, self.reject_button, self.run_button]),
                          self.status, self.output])
        self.refresh()

    def refresh(self, keep: str | None = None) -> None:
        """Reload the pending and the approved (not yet run) requests; keep ``keep`` selected if listed."""
        q = self.autonomy.approvals
        items = sorted([*q.list("pending"), *q.list("approved")], key=lambda a: a.created_at, reverse=True)
        self.picker.options = [(f"[{a.status}] {a.tool} · {a.actor} · {a.id}", a.id) for a in items]
        ids = [a.id for a in items]
        pending = [a.id for a in items if a.status == "pending"]
        self.picker.value = keep if keep in ids else (pending[0] if pending else (ids[0] if ids else None))
        self._show()

    def _show(self) -> None:
        if not self.picker.value:
            self.detail.value = "<i>nothing waits for approval</i>"
            self._buttons(None)
            return
        a = self.autonomy.approvals.get(self.picker.value)
        conf = "-" if a.confidence is None else f"{a.confidence:.2f}"
        files = "".join(f"<tr><td><code>{html.escape(p)}</code></td><td><code>{html.escape(h)}</code></td></tr>"
                        for p, h in sorted((a.files or {}).items()))
        files_html = (f"<table><tr><th>file it reads or runs</th><th>sha256</th></tr>{files}</table>" if files
                      else "files: none")
        self.detail.value = (f"<b>{html.escape(a.tool)}</b> requested by <b>{html.escape(a.actor)}</b> "
                             f"({html.escape(a.status)}, confidence {conf})<br>"
                             f"resource: {html.escape(a.resource or '-')}<br>"
                             f"why asked: {html.escape(a.reason)}<br>"
                             f"digest: <code>{html.escape(a.digest or '-')}</code><br>{files_html}"
                             f"<pre>{html.escape(json.dumps(a.args, indent=2, default=str)[:2000])}</pre>")
        self._buttons(a.status)

    def _buttons(self, status: str | None) -> None:
        self.approve_button.disabled = self.reject_button.disabled = status != "pending"
        self.run_button.disabled = status != "approved" or self.tools is None

    def decide(self, approve: bool) -> Any:
        """Approve or reject the selected request as ``by``, with the reason typed in."""
        aid = self.picker.value
        if not aid:
            return None
        q = self.autonomy.approvals
        if approve:  # an escalated vote or conflict is decided with its choice, never approved blank
            from emergent.agents.card import choice_hint

            hint = next((choice_hint(a, python=True) for a in q.list("pending") if a.id == aid), None)
            if hint:
                self.status.value = html.escape(hint)
                return None
        try:
            done = (q.approve if approve else q.reject)(aid, by=self.by, reason=self.reason.value)
        except Exception as exc:  # e.g. the requester may not approve its own request: shown to the user
            self.status.value = error_html(exc)
            self.refresh(keep=aid)
            return None
        verb = "approved" if approve else "rejected"  # done.status may already be "consumed": a waiting call ran
        ran = " (the waiting call ran it)" if done.status == "consumed" else ""
        self.status.value = f"{done.id}: <b>{verb}</b> by {html.escape(done.decided_by or '')}{ran}"
        self.reason.value = ""
        self.refresh(keep=aid)
        return done

    def run(self) -> Any:
        """Run the selected approved call once, as its requester; shows the result or the error."""
        aid = self.picker.value
        if not aid:
            return None
        if self.tools is None:
            self.status.value = "<i>pass tools=ws.tools to run approved calls from the inbox</i>"
            return None
        try:
            result = self.tools.resume(aid)
        except Exception as exc:  # stale, already used, paused meanwhile: shown; nothing ran
            self.output.value = error_html(exc)
            self.refresh()
            return None
        self.status.value = f"{aid}: <b>ran</b>"
        self.output.value = f"<pre>{html.escape(json.dumps(result, indent=2, default=str)[:5000])}</pre>"
        self.refresh()
        return result

    def _pause(self, on: bool) -> None:
        try:
            if on and not self.autonomy.paused:
                self.autonomy.pause(by=self.by, reason="paused from the approvals inbox")
            elif not on and self.autonomy.paused:
                self.autonomy.resume(by=self.by)
        except Exception as exc:  # only a human pauses: shown, and the switch shows the real state
            self.status.value = error_html(exc)
            self.pause_toggle.value = self.autonomy.paused


class PolicyEditor(widgets.VBox):
    """``PolicyEditor(ws.autonomy, by=ws.principal)``: the permission matrix as YAML (edit, apply as
    ``by``, a human) and an explain form that shows which rule wins for a principal key, a tool and a
    side-effect level (a diagnosis)."""

    def __init__(self, autonomy: Any, *, by: Principal) -> None:
        self.autonomy = autonomy
        self.by = require_principal(by, "PolicyEditor(ws.autonomy, by=ws.principal)")
        self.text = widgets.Textarea(layout=widgets.Layout(width="100%", height="220px"))
        self.apply_button = widgets.Button(description="apply", button_style="warning")
        self.reload_button = widgets.Button(description="reload")
        self.actor = widgets.Text(value="agent:scout", description="principal")
        self.tool = widgets.Text(value="files.write", description="tool")
        self.level = widgets.Dropdown(options=["read", "write", "external", "destructive", "execute"], value="write",
                                      description="side effect")
        self.confidence = widgets.FloatSlider(value=1.0, min=0.0, max=1.0, step=0.05, description="confidence")
        self.explain_button = widgets.Button(description="explain")
        self.result = widgets.HTML()
        self.apply_button.on_click(lambda _: self.apply())
        self.reload_button.on_click(lambda _: self.reload())
        self.explain_button.on_click(lambda _: self.explain())
        super().__init__([self.text, widgets.HBox([self.apply_button, self.reload_button]),
                          widgets.HBox([self.actor, self.tool]), widgets.HBox([self.level, self.confidence]),
                          self.explain_button, self.result])
        self.reload()

    def reload(self) -> None:
        self.text.value = self.autonomy.export_yaml()

    def apply(self) -> int | None:
        """Replace the rules (and defaults, thresholds) with the YAML in the editor."""
        try:
            n = int(self.autonomy.import_yaml(self.text.value, replace=True, by=self.by))
        except Exception as exc:  # shown to the user; nothing was changed when validation failed
            self.result.value = f"<span style='color:#cf222e'>{html.escape(str(exc))}</span>"
            return None
        self.result.value = f"applied {n} rules"
        self.reload()
        return n

    def explain(self) -> Any:
        """What the principal whose key is typed in would get (nothing runs, nothing is granted)."""
        try:
            d = self.autonomy.explain(self.actor.value, self.tool.value, side_effect=self.level.value,
                                      confidence=self.confidence.value)
        except Exception as exc:  # e.g. not a principal key: shown
            self.result.value = f"<span style='color:#cf222e'>{html.escape(str(exc))}</span>"
            return None
        colour = {"allow": "#1a7f37", "ask": "#9a6700", "deny": "#cf222e"}.get(d.effect, "#000")
        self.result.value = (f"<b style='color:{colour}'>{d.effect}</b> ({d.source}): "
                             f"{html.escape(d.reason)}")
        return d
