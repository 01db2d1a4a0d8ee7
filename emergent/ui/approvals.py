"""``ApprovalsInbox``: pending approval requests with approve / reject buttons and a reason box.
Acts through ``ws.autonomy`` only; a call waiting on a request resumes when it is decided."""

from __future__ import annotations

import html
import json
from typing import Any

import ipywidgets as widgets


class ApprovalsInbox(widgets.VBox):
    """``ApprovalsInbox(ws.autonomy, by="user:ana")``."""

    def __init__(self, autonomy: Any, *, by: str = "user:local") -> None:
        self.autonomy = autonomy
        self.by = by
        self.picker = widgets.Select(options=[], rows=6, description="pending")
        self.detail = widgets.HTML()
        self.reason = widgets.Text(placeholder="reason (recorded in the audit trail)", description="reason")
        self.approve_button = widgets.Button(description="approve", button_style="success")
        self.reject_button = widgets.Button(description="reject", button_style="danger")
        self.refresh_button = widgets.Button(description="refresh")
        self.pause_toggle = widgets.ToggleButton(description="pause autonomy", value=autonomy.paused)
        self.status = widgets.HTML()
        self.picker.observe(lambda _: self._show(), names="value")
        self.approve_button.on_click(lambda _: self.decide(True))
        self.reject_button.on_click(lambda _: self.decide(False))
        self.refresh_button.on_click(lambda _: self.refresh())
        self.pause_toggle.observe(lambda ch: self._pause(ch["new"]), names="value")
        super().__init__([widgets.HBox([self.refresh_button, self.pause_toggle]), self.picker, self.detail,
                          self.reason, widgets.HBox([self.approve_button, self.reject_button]), self.status])
        self.refresh()

    def refresh(self) -> None:
        pending = self.autonomy.approvals.list()
        self.picker.options = [(f"{a.tool} · {a.actor} · {a.id}", a.id) for a in pending]
        self.picker.value = pending[0].id if pending else None
        self._show()

    def _show(self) -> None:
        if not self.picker.value:
            self.detail.value = "<i>nothing waits for approval</i>"
            return
        a = self.autonomy.approvals.get(self.picker.value)
        conf = "-" if a.confidence is None else f"{a.confidence:.2f}"
        self.detail.value = (f"<b>{html.escape(a.tool)}</b> for <b>{html.escape(a.actor)}</b> "
                             f"(confidence {conf})<br>resource: {html.escape(a.resource or '-')}<br>"
                             f"why asked: {html.escape(a.reason)}<br>"
                             f"<pre>{html.escape(json.dumps(a.args, indent=2, default=str)[:2000])}</pre>")

    def decide(self, approve: bool) -> Any:
        """Approve or reject the selected request with the reason typed in."""
        if not self.picker.value:
            return None
        q = self.autonomy.approvals
        done = (q.approve if approve else q.reject)(self.picker.value, by=self.by, reason=self.reason.value)
        self.status.value = f"{done.id}: <b>{done.status}</b> by {html.escape(done.decided_by or '')}"
        self.reason.value = ""
        self.refresh()
        return done

    def _pause(self, on: bool) -> None:
        if on and not self.autonomy.paused:
            self.autonomy.pause(by=self.by, reason="paused from the approvals inbox")
        elif not on and self.autonomy.paused:
            self.autonomy.resume(by=self.by)


class PolicyEditor(widgets.VBox):
    """``PolicyEditor(ws.autonomy)``: the permission matrix as YAML (edit, apply) and an explain form
    that shows which rule wins for an actor, a tool and a side-effect level."""

    def __init__(self, autonomy: Any, *, by: str = "user:local") -> None:
        self.autonomy = autonomy
        self.by = by
        self.text = widgets.Textarea(layout=widgets.Layout(width="100%", height="220px"))
        self.apply_button = widgets.Button(description="apply", button_style="warning")
        self.reload_button = widgets.Button(description="reload")
        self.actor = widgets.Text(value="agent:scout", description="actor")
        self.tool = widgets.Text(value="files.write", description="tool")
        self.level = widgets.Dropdown(options=["read", "write", "external", "destructive"], value="write",
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
        d = self.autonomy.explain(self.actor.value, self.tool.value, side_effect=self.level.value,
                                  confidence=self.confidence.value)
        colour = {"allow": "#1a7f37", "ask": "#9a6700", "deny": "#cf222e"}.get(d.effect, "#000")
        self.result.value = (f"<b style='color:{colour}'>{d.effect}</b> ({d.source}): "
                             f"{html.escape(d.reason)}")
        return d
