"""``ToolMarketplace``: search tools, see versions and statistics, enable/disable, and run a tool
from a form generated from its JSON schema. Acts through ``ws.tools`` only, as the principal it
was given (``ws.principal``: the person at the keyboard), never as a name."""

from __future__ import annotations

import html
import json
from typing import Any

import ipywidgets as widgets

from emergent.errors import PrincipalError
from emergent.principals import HOW_TO_GET_ONE, Principal


def require_principal(value: Any, usage: str) -> Principal:
    """A widget acts for a principal it is given (``ws.principal``), never for a name string."""
    if not isinstance(value, Principal):
        raise PrincipalError(f"{type(value).__name__} {value!r} is not a principal: a widget acts for one",
                             hint=f"{usage}; {HOW_TO_GET_ONE}")
    return value


def error_html(exc: BaseException) -> str:
    return f"<pre style='color:#cf222e'>{html.escape(type(exc).__name__)}: {html.escape(str(exc))}</pre>"


def field_widget(name: str, schema: dict[str, Any], required: bool) -> widgets.Widget:
    """One input for one JSON-schema property (number, integer, boolean, string, or JSON)."""
    kind = schema.get("type")
    if kind is None and "anyOf" in schema:  # Optional[X]
        kinds = [s.get("type") for s in schema["anyOf"] if s.get("type") != "null"]
        kind = kinds[0] if len(kinds) == 1 else None
    label = name + (" *" if required else "")
    default = schema.get("default")
    style = {"description_width": "120px"}
    if kind == "boolean":
        return widgets.Checkbox(value=bool(default), description=label, style=style)
    if kind == "integer":
        return widgets.IntText(value=default or 0, description=label, style=style)
    if kind == "number":
        return widgets.FloatText(value=default or 0.0, description=label, style=style)
    if kind == "string":
        return widgets.Text(value=default or "", description=label, style=style)
    return widgets.Textarea(value="" if default is None else json.dumps(default), description=label + " (JSON)",
                            style=style, placeholder=json.dumps(schema)[:80])


def form_values(schema: dict[str, Any], fields: dict[str, widgets.Widget]) -> dict[str, Any]:
    """Arguments from the form: empty optional text fields are left out, JSON fields are parsed."""
    required = set(schema.get("required", []))
    out: dict[str, Any] = {}
    for name, w in fields.items():
        value = w.value
        if isinstance(w, widgets.Textarea):
            if not value.strip():
                continue
            value = json.loads(value)
        elif isinstance(w, widgets.Text) and value == "" and name not in required:
            continue
        out[name] = value
    return out


class ToolMarketplace(widgets.VBox):
    """``ToolMarketplace(ws.tools, principal=ws.principal)``: pick a tool, read its versions and
    stats, enable or disable a version (a human's decision), run it from a form as ``principal``."""

    def __init__(self, tools: Any, *, principal: Principal) -> None:
        self.tools = tools
        self.principal = require_principal(principal, "ToolMarketplace(ws.tools, principal=ws.principal)")
        self.search = widgets.Text(placeholder="search tools", description="search")
        self.picker = widgets.Select(options=[], rows=8, description="tools")
        self.version = widgets.Dropdown(options=[], description="version")
        self.info = widgets.HTML()
        self.toggle = widgets.Button(description="disable version")
        self.form = widgets.VBox()
        self.run_button = widgets.Button(description="run", button_style="primary")
        self.output = widgets.HTML()
        self.fields: dict[str, widgets.Widget] = {}
        self.search.observe(lambda _: self.refresh(), names="value")
        self.picker.observe(lambda _: self._show_tool(), names="value")
        self.version.observe(lambda _: self._show_version(), names="value")
        self.toggle.on_click(lambda _: self._toggle())
        self.run_button.on_click(lambda _: self.run())
        super().__init__([self.search, self.picker, self.version, self.info, self.toggle, self.form,
                          self.run_button, self.output])
        self.refresh()

    def refresh(self) -> None:
        names = [i.name for i in self.tools.list(self.search.value)]
        self.picker.options = names
        if names and self.picker.value not in names:
            self.picker.value = names[0]

    def _show_tool(self) -> None:
        if not self.picker.value:
            return
        versions = [v.version for v in self.tools.versions(self.picker.value)]
        self.version.options = versions
        self.version.value = versions[-1]
        self._show_version()

    def _show_version(self) -> None:
        info = self._show_info()
        if info is not None:
            self._build_form(f"{info.name}@{info.version}", info.loaded)

    def _show_info(self) -> Any:
        name, version = self.picker.value, self.version.value
        if not name or not version:
            return None
        info = next(v for v in self.tools.versions(name) if v.version == version)
        stats = [s for s in self.tools.stats(name) if s.version == version]
        st = (f"{stats[0].calls} calls · {stats[0].success_rate:.0%} ok · p50 {stats[0].p50_ms:.2f} ms · "
              f"p95 {stats[0].p95_ms:.2f} ms" + (f" · last error: {html.escape(stats[0].last_error[:80])}"
                                                   if stats[0].last_error else "")) if stats else "no calls yet"
        flags = ("enabled" if info.enabled else "<b>disabled</b>") + (
            f" · deprecated → {html.escape(info.successor or '')}" if info.deprecated else "")
        self.info.value = (f"<b>{html.escape(name)}@{version}</b> · {info.side_effect} · {flags}<br>"
                           f"{html.escape(info.description)}<br><small>{st}</small>")
        self.toggle.description = "disable version" if info.enabled else "enable version"
        return info

    def _build_form(self, ref: str, loaded: bool) -> None:
        if not loaded:
            self.fields, self.form.children = {}, [widgets.HTML("<i>code not loaded in this process</i>")]
            return
        schema = self.tools.resolve(ref).args_schema
        required = set(schema.get("required", []))
        self.fields = {n: field_widget(n, s, n in required) for n, s in schema.get("properties", {}).items()}
        self.form.children = list(self.fields.values())

    def _toggle(self) -> None:
        ref = f"{self.picker.value}@{self.version.value}"
        info = next(v for v in self.tools.versions(self.picker.value) if v.version == self.version.value)
        try:
            (self.tools.disable if info.enabled else self.tools.enable)(ref, by=self.principal)
        except Exception as exc:  # e.g. an agent may not manage the registry: shown, not swallowed
            self.output.value = error_html(exc)
        self._show_info()

    def run(self) -> Any:
        """Run the selected version with the form's values; shows the result or the error."""
        ref = f"{self.picker.value}@{self.version.value}"
        try:
            args = form_values(self.tools.resolve(ref).args_schema, self.fields)
            result = self.tools.call(ref, args, principal=self.principal, wait=False)
        except Exception as exc:  # shown to the user, not swallowed: the runner recorded it
            self.output.value = error_html(exc)
            self._show_info()
            return None
        self.output.value = f"<pre>{html.escape(json.dumps(result, indent=2, default=str)[:5000])}</pre>"
        self._show_info()
        return result
