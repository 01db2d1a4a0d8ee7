"""A small web site served on loopback, for the browser notebook, the benchmark and the tests.

Nothing here reaches the network: :class:`DemoSite` serves generated pages from a thread on
``127.0.0.1`` (a free port). It has what browser automation meets in practice: a login form with
labels, a select, a checkbox and an upload; a paginated table; an infinite-scroll list; content that
appears late; an iframe; a pop-up; a download; a redirect and a sub-resource on another host
(``localhost`` instead of ``127.0.0.1``, so an allow-list naming one blocks the other).

``site.mutate(True)`` serves a *changed* copy of every page, as a redesign would: ids, classes and
test ids renamed, wrappers added, some labels and button texts reworded, element order shuffled
within a form. A recorded script whose CSS selectors break there must heal.
"""

from __future__ import annotations

import html
import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

ROWS = 57  # the table's rows; 10 per page: 6 pages
PER_PAGE = 10
SCROLL_ITEMS = 45  # the infinite list's items; 15 per load
COUNTRIES = ["Austria", "Brazil", "Canada", "Denmark", "Egypt"]


def _rows() -> list[dict[str, Any]]:
    out = []
    for i in range(1, ROWS + 1):
        out.append({"id": i, "compound": f"CMP-{i:04d}", "assay": ["binding", "toxicity", "solubility"][i % 3],
                    "ic50_nm": round(3.5 * i + (i % 7) * 1.25, 2), "active": i % 4 != 0,
                    "measured": f"2026-{(i % 12) + 1:02d}-{(i % 27) + 1:02d}"})
    return out


TABLE = _rows()


def _page(title: str, body: str, *, head: str = "") -> bytes:
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"{head}</head><body>{body}</body></html>").encode()


class DemoSite:
    """Serve the demo pages on ``127.0.0.1:<free port>`` until :meth:`close` (also a context manager)."""

    def __init__(self, *, latency_s: float = 0.0) -> None:
        self.mutated = False
        self.latency_s = latency_s
        self.submissions: list[dict[str, Any]] = []
        self.uploads: list[dict[str, Any]] = []
        self.requests: list[str] = []
        self._lock = threading.Lock()
        site = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def do_GET(self) -> None:  # noqa: N802
                site._serve(self, "GET")

            def do_POST(self) -> None:  # noqa: N802
                site._serve(self, "POST")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="demo-site", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ addresses
    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def other(self) -> str:
        """The same server under another host name (``localhost``): outside an allow-list of 127.0.0.1."""
        return f"http://localhost:{self.port}"

    def url(self, path: str = "/") -> str:
        return self.base + path

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def mutate(self, on: bool = True) -> None:
        """Serve the redesigned copy of every page (ids, classes, test ids, some texts changed)."""
        self.mutated = on

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> DemoSite:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ serving
    def _serve(self, h: BaseHTTPRequestHandler, method: str) -> None:
        parts = urlsplit(h.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        with self._lock:
            self.requests.append(f"{method} {h.headers.get('Host', '')}{h.path}")
        if self.latency_s:
            time.sleep(self.latency_s)
        body = b""
        if method == "POST":
            n = int(h.headers.get("Content-Length") or 0)
            body = h.rfile.read(n) if n else b""
        route: Callable[..., tuple[int, dict[str, str], bytes]] | None = getattr(
            self, "_r_" + (parts.path.strip("/").replace("-", "_").replace(".", "_").replace("/", "__") or "index"), None)
        if route is None:
            status, headers, payload = 404, {"Content-Type": "text/html"}, _page("Not found", "<h1>Not found</h1>")
        else:
            status, headers, payload = route(query, body, h)
        h.send_response(status)
        for k, v in {"Content-Length": str(len(payload)), **headers}.items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(payload)

    @staticmethod
    def _html(body: bytes) -> tuple[int, dict[str, str], bytes]:
        return 200, {"Content-Type": "text/html; charset=utf-8"}, body

    # each page: the original, or (mutated) the redesign -----------------------------------------------
    def _r_index(self, q: dict[str, str], body: bytes, h: Any) -> tuple[int, dict[str, str], bytes]:
        links = ["login", "table", "scroll", "late", "frame", "popup", "download", "redirect-out", "subresource"]
        items = "".join(f"<li><a href='/{p}'>{p}</a></li>" for p in links)
        return self._html(_page("Demo lab portal", f"<h1>Demo lab portal</h1><ul>{items}</ul>"))

    def _r_login(self, q: dict[str, str], body: bytes, h: Any) -> tuple[int, dict[str, str], bytes]:
        opts = "".join(f"<option value='{c.lower()[:2]}'>{c}</option>" for c in COUNTRIES)
        if not self.mutated:
            form = (
                "<h1>Sign in to the lab portal</h1>"
                "<form id='login-form' class='form' method='post' action='/submit' enctype='multipart/form-data'>"
                "<label for='email'>Email</label><input id='email' name='email' type='email' class='inp-1'>"
                "<label for='password'>Password</label><input id='password' name='password' type='password'>"
                f"<label for='country'>Country</label><select id='country' name='country'>{opts}</select>"
                "<input id='agree' name='agree' type='checkbox'><label for='agree'>I agree to the terms</label>"
                "<label for='report'>Report</label><input id='report' name='report' type='file'>"
                "<input id='project' name='project' placeholder='Project code' class='p-9'>"
                "<button id='submit-btn' class='btn btn-primary' data-testid='sign-in' type='submit'>Sign in"
                "</button></form>")
        else:
            form = (
                "<header><nav><a href='/'>Home</a></nav></header><main><section class='x-card'>"
                "<h1>Sign in to the lab portal</h1>"
                "<form id='f-7c1' class='v2-form' method='post' action='/submit' enctype='multipart/form-data'>"
                "<div class='row'><label for='u-91'>E-mail address</label>"
                "<input id='u-91' name='email' type='email' class='c-a'></div>"
                "<div class='row'><label for='u-92'>Password</label>"
                "<input id='u-92' name='password' type='password' class='c-b'></div>"
                "<div class='row'><input id='u-95' name='project' placeholder='Project code' class='c-e'></div>"
                f"<div class='row'><label for='u-93'>Country</label><select id='u-93' name='country'>{opts}</select>"
                "</div><div class='row'><input id='u-94' name='agree' type='checkbox'>"
                "<label for='u-94'>I agree to the terms</label></div>"
                "<div class='row'><label for='u-96'>Report</label><input id='u-96' name='report' type='file'></div>"
                "<div class='actions'><button id='b-0x' class='v2-btn' data-testid='login-submit' type='submit'>"
                "Sign in now</button></div></form></section></main>")
        return self._html(_page("Sign in", form))

    def _r_submit(self, q: dict[str, str], body: bytes, h: Any) -> tuple[int, dict[str, str], bytes]:
        fields = _multipart(body, h.headers.get("Content-Type", ""))
        with self._lock:
            self.submissions.append({k: v for k, v in fields.items() if not isinstance(v, bytes)})
            for k, v in fields.items():
                if isinstance(v, bytes):
                    self.uploads.append({"field": k, "size": len(v), "head": v[:64]})
        who = html.escape(str(fields.get("email", "")))
        return self._html(_page("Welcome", f"<h1>Welcome</h1><p id='who'>Signed in as {who}</p>"
                                f"<a href='/table'>Results</a>"))

    def _r_table(self, q: dict[str, str], body: bytes, h: Any) -> tuple[int, dict[str, str], bytes]:
        try:
            page = max(1, int(q.get("page", "1")))
        except ValueError:
            page = 1
        pages = (ROWS + PER_PAGE - 1) // PER_PAGE
        rows = TABLE[(page - 1) * PER_PAGE: page * PER_PAGE]
        cls = "v2-row" if self.mutated else "result-row"
        trs = "".join(
            f"<tr class='{cls}' data-id='{r['id']}'><td class='c-compound'>{r['compound']}</td>"
            f"<td class='c-assay'>{r['assay']}</td><td class='c-ic50'>{r['ic50_nm']}</td>"
            f"<td class='c-active'>{'yes' if r['active'] else 'no'}</td><td class='c-date'>{r['measured']}</td></tr>"
            for r in rows)
        nxt = (f"<a class='next' href='/table?page={page + 1}'>Next</a>" if page < pages
               else "<span class='next disabled' aria-disabled='true'>Next</span>")
        prev = f"<a class='prev' href='/table?page={page - 1}'>Previous</a>" if page > 1 else ""
        table = ("<table id='results'><thead><tr><th>Compound</th><th>Assay</th><th>IC50 (nM)</th><th>Active</th>"
                 f"<th>Measured</th></tr></thead><tbody>{trs}</tbody></table>"
                 f"<nav class='pager'>{prev} <span class='page'>Page {page} of {pages}</span> {nxt}</nav>")
        return self._html(_page(f"Results, page {page}", f"<h1>Assay results</h1>{table}"))

    def _r_api__items(self, q: dict[str, str], body: bytes, h: Any) -> tuple[int, dict[str, str], bytes]:
        off = int(q.get("offset", "0") or 0)
        items = [{"title": f"Paper {i:03d}", "year": 2000 + i % 25, "cites": (i * 37) % 500}
                 for i in range(off, min(off + 15, SCROLL_ITEMS))]
        return 200, {"Content-Type": "application/json"}, json.dumps(items).encode()

    def _r_scroll(self, q: dict[str, str], body: bytes, h: Any) -> tuple[int, dict[str, str], bytes]:
        script = """<script>
let offset = 0, loading = false;
async function more() {
  if (loading) return; loading = true;
  const items = await (await fetch('/api/items?offset=' + offset)).json();
  for (const it of items) {
    const li = document.createElement('li'); li.className = 'paper';
    li.innerHTML = `<span class="title">${it.title}</span> <span class="year">${it.year}</span>
                    <span class="cites">${it.cites}</span>`;
    document.getElementById('papers').appendChild(li);
  }
  offset += items.length; loading = false;
  if (items.length === 0) document.getElementById('end').hidden = false;
}
window.addEventListener('scroll', () => {
  if (window.innerHeight + window.scrollY >= document.body.scrollHeight - 50) more();
});
more();
</script>"""
        return self._html(_page("Papers", "<h1>Papers</h1><ul id='papers' style='padding-bottom:1200px'></ul>"
                                "<p id='end' hidden>No more papers</p>" + script))

    def _r_late(self, q: dict[str, str], body: bytes, h: Any) -> tuple[int, dict[str, str], bytes]:
        delay = int(q.get("ms", "800") or 800)
        script = (f"<script>setTimeout(() => {{ document.getElementById('slot').innerHTML = "
                  f"\"<button type='button' onclick=\\\"this.textContent='Loaded and clicked'\\\">Load results"
                  f"</button><p class='status'>ready</p>\"; }}, {delay});</script>")
        return self._html(_page("Late", "<h1>Late content</h1><div id='slot'>loading…</div>" + script))

    def _r_frame(self, q: dict[str, str], body: bytes, h: Any) -> tuple[int, dict[str, str], bytes]:
        return self._html(_page("Frame", "<h1>Embedded tool</h1><iframe id='tool' title='Embedded calculator' "
                                "src='/frame-inner' width='400' height='200'></iframe>"))

    def _r_frame_inner(self, q: dict[str, str], body: bytes, h: Any) -> tuple[int, dict[str, str], bytes]:
        return self._html(_page("Calculator", "<label for='n'>Number</label><input id='n' name='n'>"
                                "<button type='button' onclick=\"document.getElementById('out').textContent="
                                "String(Number(document.getElementById('n').value)*2)\">Double</button>"
                                "<output id='out'></output>"))

    def _r_popup(self, q: dict[str, str], body: bytes, h: Any) -> tuple[int, dict[str, str], bytes]:
        return self._html(_page("Pop-ups", "<h1>Pop-ups</h1>"
                                "<a href='/popup-target' target='_blank'>Open details</a> "
                                f"<button type='button' onclick=\"window.open('{self.other}/popup-target')\">"
                                "Open elsewhere</button>"))

    def _r_popup_target(self, q: dict[str, str], body: bytes, h: Any) -> tuple[int, dict[str, str], bytes]:
        return self._html(_page("Details", "<h1>Details</h1><p>Compound CMP-0001 is a binder.</p>"))

    def _r_download(self, q: dict[str, str], body: bytes, h: Any) -> tuple[int, dict[str, str], bytes]:
        return self._html(_page("Download", "<h1>Export</h1><a href='/export.csv' download>Export CSV</a>"))

    def _r_export_csv(self, q: dict[str, str], body: bytes, h: Any) -> tuple[int, dict[str, str], bytes]:
        lines = ["compound,assay,ic50_nm"] + [f"{r['compound']},{r['assay']},{r['ic50_nm']}" for r in TABLE]
        return 200, {"Content-Type": "text/csv", "Content-Disposition": "attachment; filename=export.csv"}, (
            "\n".join(lines) + "\n").encode()

    def _r_redirect_out(self, q: dict[str, str], body: bytes, h: Any) -> tuple[int, dict[str, str], bytes]:
        return 302, {"Location": f"{self.other}/popup-target", "Content-Type": "text/plain"}, b"moved"

    def _r_subresource(self, q: dict[str, str], body: bytes, h: Any) -> tuple[int, dict[str, str], bytes]:
        return self._html(_page("Tracker", "<h1>A page with a tracker</h1>"
                                f"<img alt='pixel' src='{self.other}/pixel.gif'>"
                                f"<script src='{self.other}/tracker.js'></script><p id='ok'>content</p>"))

    def _r_pixel_gif(self, q: dict[str, str], body: bytes, h: Any) -> tuple[int, dict[str, str], bytes]:
        gif = (b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00,"
               b"\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;")
        return 200, {"Content-Type": "image/gif"}, gif

    def _r_tracker_js(self, q: dict[str, str], body: bytes, h: Any) -> tuple[int, dict[str, str], bytes]:
        return 200, {"Content-Type": "application/javascript"}, b"document.title = 'tracked';"


def _multipart(body: bytes, content_type: str) -> dict[str, Any]:
    """The fields of a multipart/form-data (files as bytes) or urlencoded body."""
    if content_type.startswith("application/x-www-form-urlencoded"):
        return {k: v[-1] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
    from email.parser import BytesParser
    from email.policy import HTTP

    msg = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body)
    out: dict[str, Any] = {}
    for part in msg.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not name:
            continue
        raw = part.get_payload(decode=True)
        payload = raw if isinstance(raw, bytes) else b""
        out[str(name)] = payload if part.get_filename() else payload.decode("utf-8", "replace")
    return out
