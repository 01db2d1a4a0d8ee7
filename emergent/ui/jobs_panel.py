"""``JobsPanel``: the jobs of a workspace, their next run, recent runs with links to the executed
notebooks, and run-now / pause / resume buttons. It acts only through ``ws.jobs``."""

from __future__ import annotations

import html
import os
import threading
from pathlib import Path
from typing import Any

import ipywidgets as widgets

from emergent.clock import iso

_STATUS_COLOUR = {"succeeded": "#1a7f37", "running": "#0969da", "failed": "#cf222e", "timeout": "#bc4c00",
                  "kernel_died": "#cf222e", "invalid": "#8250df", "interrupted": "#bc4c00"}


def _when(t: float | None) -> str:
    return iso(t).replace("+00:00", "Z") if t else "-"


def _link(path: str | None) -> str:
    if not path:
        return "-"
    try:
        rel = os.path.relpath(path, Path.cwd())
    except ValueError:
        rel = path
    return f'<a href="{html.escape(rel)}" target="_blank">{html.escape(Path(path).name)}</a>'


class JobsPanel(widgets.VBox):
    """``JobsPanel(ws.jobs, principal=ws.principal)`` in a notebook cell; ``refresh()`` re-reads the store.

    Run, pause and resume act as ``principal`` (audited); without one the panel only shows."""

    def __init__(self, jobs: Any, *, principal: Any = None, runs: int = 10) -> None:
        self.jobs = jobs
        self.principal = principal
        self.n_runs = runs
        self.title = widgets.HTML("<b>Emergent jobs</b>")
        self.rows = widgets.VBox()
        self.runs_html = widgets.HTML()
        self.message = widgets.HTML()
        self.refresh_button = widgets.Button(description="Refresh", icon="refresh")
        self.refresh_button.on_click(lambda _b: self.refresh())
        self.buttons: dict[tuple[str, str], widgets.Button] = {}
        self._threads: list[threading.Thread] = []
        super().__init__([self.title, self.rows, widgets.HTML("<b>Recent runs</b>"), self.runs_html,
                          widgets.HBox([self.refresh_button, self.message])])
        self.add_class("emergent-jobs-panel")
        self.refresh()

    # ------------------------------------------------------------------ rendering
    def refresh(self) -> None:
        states = self.jobs.list()
        rows = [self._row(s) for s in states]
        self.rows.children = rows or [widgets.HTML("<i>no jobs yet: ws.jobs.add(name, notebook, schedule=...)</i>")]
        runs = self.jobs.history(None, self.n_runs)
        body = "".join(
            f"<tr><td>{r.id}</td><td>{html.escape(r.job)}</td><td>{_when(r.started_at)}</td>"
            f"<td style='color:{_STATUS_COLOUR.get(r.status.value, '#000')}'>{r.status.value}</td>"
            f"<td>{'' if r.duration_s is None else f'{r.duration_s:.1f}s'}</td>"
            f"<td>{_error(r.error)}</td><td>{_link(r.output_path)}</td></tr>" for r in runs)
        self.runs_html.value = ("<table class='emergent-runs'><tr><th>run</th><th>job</th><th>started</th>"
                                "<th>status</th><th>time</th><th>error</th><th>notebook</th></tr>"
                                f"{body}</table>" if runs else "<i>no runs yet</i>")

    def _row(self, state: Any) -> widgets.HBox:
        name = state.name
        label = "paused" if state.paused else ("running" if state.lease_owner else "active")
        info = widgets.HTML(f"<code>{html.escape(name)}</code> &middot; {html.escape(state.spec.schedule or 'on demand')}"
                            f" &middot; next {_when(None if state.paused else state.next_run_at)} &middot; "
                            f"<span class='emergent-job-state'>{label}</span>")
        run = widgets.Button(description="Run now", icon="play", tooltip=f"run {name} now")
        toggle = widgets.Button(description="Resume" if state.paused else "Pause",
                                icon="play-circle" if state.paused else "pause")
        run.on_click(lambda _b, n=name: self.run_now(n))
        toggle.on_click(lambda _b, n=name, p=state.paused: self.resume(n) if p else self.pause(n))
        self.buttons[(name, "run")], self.buttons[(name, "toggle")] = run, toggle
        return widgets.HBox([info, run, toggle])

    # ------------------------------------------------------------------ actions
    def pause(self, name: str) -> None:
        self._act(name, "paused", lambda: self.jobs.pause(name, principal=self.principal))

    def resume(self, name: str) -> None:
        self._act(name, "resumed", lambda: self.jobs.resume(name, principal=self.principal))

    def _act(self, name: str, done: str, fn: Any) -> None:
        try:
            fn()
        except Exception as exc:  # shown in the panel: the click must not fail silently
            self.message.value = f"<code>{html.escape(name)}</code>: {html.escape(str(exc))}"
            return
        self.message.value = f"{done} <code>{html.escape(name)}</code>"
        self.refresh()

    def run_now(self, name: str, *, wait: bool = False) -> None:
        """Start job ``name`` in a background thread (the notebook stays responsive)."""
        self.message.value = f"running <code>{html.escape(name)}</code>…"

        def work() -> None:
            try:
                run = self.jobs.run(name, principal=self.principal)
                self.message.value = f"<code>{html.escape(name)}</code>: {run.status.value}"
            except Exception as exc:  # shown in the panel: the click must not fail silently
                self.message.value = f"<code>{html.escape(name)}</code>: {html.escape(str(exc))}"
            self.refresh()

        thread = threading.Thread(target=work, name=f"jobs-panel-{name}", daemon=True)
        self._threads.append(thread)
        thread.start()
        if wait:
            thread.join()


def _error(message: str | None) -> str:
    """The whole error: short ones inline, long ones folded behind their first line (never cut)."""
    if not message:
        return ""
    if len(message) <= 120:
        return html.escape(message)
    return (f"<details><summary>{html.escape(message[:117])}...</summary>"
            f"<pre style='white-space:pre-wrap'>{html.escape(message)}</pre></details>")
