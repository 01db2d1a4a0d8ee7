"""Local servers that speak the vendors' wire formats, for the integration tests.

:class:`VendorServer` is a threaded werkzeug server on 127.0.0.1 that checks every request against
the vendor's own API description (``tests/integrations/specs``, copied with their licences and provenance,
see its README; OpenAPI 3 with openapi-core, the
Slack Swagger 2.0 file with jsonschema, Linear's GraphQL schema with graphql-core) and checks its
own JSON answers against the documented response schemas too. A route handler returns
``(status, body, headers)``; every mismatch is recorded in ``server.errors`` and fails the test at
teardown, so a client that drifts from the documented API cannot pass.
"""

from __future__ import annotations

import functools
import json
import os
import re
import threading
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

SPECS = Path(os.environ.get("EMERGENT_VENDOR_SPECS", Path(__file__).resolve().parent / "specs"))
HERE = Path(__file__).resolve().parent
Handler = Callable[[Request, dict[str, str]], tuple[int, Any, dict[str, str]] | tuple[int, Any]]


class Raw:
    """A response body sent as-is (not JSON, not checked against the spec): for malformed answers."""

    def __init__(self, body: bytes | str, content_type: str = "text/html") -> None:
        self.body = body.encode() if isinstance(body, str) else body
        self.content_type = content_type


@dataclass
class Call:
    method: str
    path: str
    args: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


# ---------------------------------------------------------------------- validators
class OpenAPIValidator:
    """openapi-core over one or more OpenAPI 3 documents; the server URL is rewritten to ours."""

    def __init__(self, docs: list[tuple[str, str]]) -> None:
        self.docs = docs
        self.apis: list[Any] = []

    def bind(self, base_url: str) -> None:
        self.apis = [_openapi(rel, prefix) for rel, prefix in self.docs]

    def check(self, request: Request, response: Response | None) -> list[str]:
        from openapi_core.contrib.werkzeug import WerkzeugOpenAPIRequest, WerkzeugOpenAPIResponse
        from openapi_core.templating.paths.exceptions import PathError

        oreq = WerkzeugOpenAPIRequest(request)
        for api in self.apis:
            try:
                with warnings.catch_warnings():  # "Unsupported scheme type" for OAuth2 schemes
                    warnings.simplefilter("ignore", UserWarning)
                    if response is None:
                        api.validate_request(oreq)
                    else:
                        api.validate_response(oreq, WerkzeugOpenAPIResponse(response))
                return []
            except PathError:
                continue
            except Exception as exc:  # openapi-core's validation errors, with their causes
                return [_explain(exc)]
        return [f"{request.method} {request.path} is not an operation of the API description"]


def _explain(exc: BaseException) -> str:
    parts = [f"{type(exc).__name__}: {str(exc)[:400]}"]
    for sub in getattr(exc, "schema_errors", None) or []:
        parts.append(f"  - {getattr(sub, 'message', sub)} at {list(getattr(sub, 'absolute_path', []))}")
    cause = exc.__cause__ or exc.__context__
    if cause is not None and cause is not exc:
        parts.append("  cause: " + _explain(cause))
    return "\n".join(parts)


class Swagger2Validator:
    """Slack's Swagger 2.0 file: each operation's parameters become a JSON schema (jsonschema
    Draft 4) that the query/form fields must satisfy; answers are checked against the 200 schema."""

    def __init__(self, doc: dict[str, Any], prefix: str) -> None:
        self.doc, self.prefix = doc, prefix

    def bind(self, base_url: str) -> None:
        pass

    def _op(self, request: Request) -> dict[str, Any] | None:
        path = request.path[len(self.prefix):] if request.path.startswith(self.prefix) else None
        ops = self.doc["paths"].get(path or "", {})
        return ops.get(request.method.lower())

    def check(self, request: Request, response: Response | None) -> list[str]:
        import jsonschema

        op = self._op(request)
        if op is None:
            return [f"{request.method} {request.path} is not an operation of the Slack API description"]
        if response is not None:
            body = json.loads(response.get_data())
            answer = op["responses"]["200" if body.get("ok") else "default"]  # Slack: HTTP 200 + ok:false
            schema = {**answer["schema"], "definitions": self.doc["definitions"]}
            errors = jsonschema.Draft4Validator(schema).iter_errors(body)
            return [f"response: {e.message} at {list(e.absolute_path)}" for e in errors]
        props: dict[str, Any] = {}
        required: list[str] = []
        values: dict[str, Any] = {}
        sources = {"query": request.args, "formData": request.form}
        bearer = request.headers.get("Authorization", "").removeprefix("Bearer ")
        for p in op.get("parameters", []):
            props[p["name"]] = {k: v for k, v in p.items() if k in ("type", "enum", "format", "items")}
            if p.get("required"):
                required.append(p["name"])
            if p["name"] == "token" and bearer:  # Slack reads the token from Authorization: Bearer
                values["token"] = bearer
            elif p["in"] in sources and p["name"] in sources[p["in"]]:
                values[p["name"]] = _coerce(sources[p["in"]][p["name"]], p.get("type"))
        extra = set(request.args) | set(request.form)
        schema = {"type": "object", "properties": props, "required": required, "additionalProperties": False}
        values.update({k: request.values[k] for k in extra - set(props)})
        if request.method == "POST" and request.mimetype not in op.get("consumes", []):
            return [f"{request.mimetype} is not among {op.get('consumes')}"]
        return [f"request: {e.message}" for e in jsonschema.Draft4Validator(schema).iter_errors(values)]


def _coerce(raw: str, kind: str | None) -> Any:
    if kind == "boolean" and raw in ("true", "false", "1", "0"):
        return raw in ("true", "1")
    if kind in ("integer", "number"):
        try:
            return int(raw) if kind == "integer" else float(raw)
        except ValueError:
            return raw
    return raw


# ---------------------------------------------------------------------- the server
@dataclass
class VendorServer:
    validator: Any
    routes: list[tuple[str, re.Pattern[str], Handler]] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    url: str = ""

    def route(self, method: str, template: str, handler: Handler) -> None:
        pattern = re.compile("^" + re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(template)) + "$")
        self.routes.insert(0, (method.upper(), pattern, handler))

    def _app(self, environ: dict[str, Any], start_response: Any) -> Any:
        raw_path = environ.get("RAW_URI", "").split("?")[0]
        if "%2f" in raw_path.lower():  # keep an encoded "/" inside one segment (GitLab project paths)
            environ["PATH_INFO"] = raw_path
        request = Request(environ)
        request.get_data()  # buffer the body so validators and handlers can both read it
        self.calls.append(Call(request.method, request.path, request.args.to_dict(flat=False),
                               dict(request.headers), request.get_data()))
        errors = self.validator.check(request, None)
        self.errors += [f"{request.method} {request.full_path}: {e}" for e in errors]
        response = self._dispatch(request)
        deliberate = response.headers.pop("X-Test-Raw", None)  # a malformed answer on purpose
        if not deliberate and 200 <= response.status_code < 300 and response.mimetype == "application/json":
            self.errors += [f"{request.method} {request.path} answer: {e}"
                            for e in self.validator.check(request, response)]
        return response(environ, start_response)

    def _dispatch(self, request: Request) -> Response:
        for method, pattern, handler in self.routes:
            m = pattern.match(request.path)
            if m and method == request.method:
                out = handler(request, m.groupdict())
                status, body, headers = (*out, {}) if len(out) == 2 else out  # type: ignore[misc]
                if isinstance(body, Raw):
                    return Response(body.body, status=status, headers={**headers, "X-Test-Raw": "1"},
                                    content_type=body.content_type)
                return Response(json.dumps(body), status=status, headers=headers,
                                content_type="application/json")
        self.errors.append(f"no route for {request.method} {request.path}")
        return Response(json.dumps({"message": "Not Found"}), status=404, content_type="application/json")


@pytest.fixture
def vendor_server() -> Iterator[Callable[[Any], VendorServer]]:
    """A factory: ``vendor_server(validator)`` starts a server; all stop and are checked at teardown."""
    started: list[tuple[VendorServer, Any, threading.Thread]] = []

    def start(validator: Any) -> VendorServer:
        server = VendorServer(validator)
        httpd = make_server("127.0.0.1", 0, server._app, threaded=True)
        server.url = f"http://127.0.0.1:{httpd.server_port}"
        validator.bind(server.url)
        thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
        thread.start()
        started.append((server, httpd, thread))
        return server

    yield start
    for server, httpd, thread in started:
        httpd.shutdown()
        thread.join(5)
        assert not server.errors, "requests or answers that break the API description:\n" + "\n".join(server.errors)


# ---------------------------------------------------------------------- specs and payloads
_DOCS: dict[str, dict[str, Any]] = {}


def spec(rel: str) -> dict[str, Any]:
    """A vendor description by path under the specs directory (or tests/integrations for GitLab)."""
    if rel not in _DOCS:
        path = HERE / rel if rel.startswith("specs/") else SPECS / rel
        if not path.exists():
            pytest.fail(f"vendor description {path} is missing: set EMERGENT_VENDOR_SPECS to the vendor-specs directory")
        if path.suffix in (".yaml", ".yml"):
            import yaml

            _DOCS[rel] = yaml.safe_load(path.read_text())
        else:
            _DOCS[rel] = json.loads(path.read_text())
        for fix in KNOWN_DEFECTS.get(rel, ()):
            fix(_DOCS[rel])
    return _DOCS[rel]


def _confluence_page_body_any_of(doc: dict[str, Any]) -> None:
    """Confluence v2 ``PageCreateRequest.body`` is ``oneOf [PageBodyWrite, PageNestedBodyWrite]``,
    two open objects that every body satisfies at once, so no request can pass ``oneOf``; read it
    as ``anyOf`` (the documented examples send ``{"representation", "value"}``)."""
    schema = doc["components"]["requestBodies"]["PageCreateRequest"]["content"]["application/json"]["schema"]
    schema["properties"]["body"] = {"anyOf": schema["properties"]["body"]["oneOf"]}


def _pagerduty_writable_references(doc: dict[str, Any]) -> None:
    """PagerDuty's ``Reference`` inherits ``id``/``type`` marked ``readOnly`` from ``Tag``, so no
    request could name a service, yet every write must (its own request example does); and
    ``IncidentBody.details`` is typed ``object`` while the example and the docs send a string.
    Make reference ids writable and accept a string for ``details``, as the examples show."""
    schemas = doc["components"]["schemas"]
    base = json.loads(json.dumps(schemas["Tag"]["allOf"][0]))
    for key in ("id", "type"):
        base["properties"][key].pop("readOnly", None)
    schemas["Reference"]["allOf"][0] = base
    schemas["IncidentBody"]["properties"]["details"] = {"oneOf": [{"type": "object"}, {"type": "string"}]}


#: corrections of defects in the vendors' files that make valid traffic unvalidatable, each explained
KNOWN_DEFECTS: dict[str, tuple[Callable[[dict[str, Any]], None], ...]] = {
    "confluence/subset.json": (_confluence_page_body_any_of,),
    "pagerduty/subset.json": (_pagerduty_writable_references,),
}


def openapi(*docs: tuple[str, str]) -> OpenAPIValidator:
    """A validator over ``(spec path, server path prefix)`` pairs."""
    return OpenAPIValidator(list(docs))


_APIS: dict[tuple[str, str], Any] = {}


def _openapi(rel: str, prefix: str) -> Any:
    """openapi-core's view of a description, its servers replaced by a host-relative prefix
    (so one parsed description serves every test's server on any port). Built once per run."""
    if (rel, prefix) not in _APIS:
        from openapi_core import Config, OpenAPI

        doc = {**spec(rel), "servers": [{"url": prefix or "/"}]}
        _APIS[(rel, prefix)] = OpenAPI.from_dict(doc, config=Config(spec_validator_cls=None))
    return _APIS[(rel, prefix)]


def instance(doc: dict[str, Any], schema: dict[str, Any] | str, depth: int = 0, **overrides: Any) -> Any:
    """A minimal value valid for ``schema`` (its required fields, first enum values, formats
    honoured) built from the vendor's description, with ``overrides`` applied at the top level."""
    if isinstance(schema, str):
        schema = {"$ref": schema if schema.startswith("#") else f"#/components/schemas/{schema}"}
    value = _instance(doc, schema, depth)
    if overrides and isinstance(value, dict):
        value.update(overrides)
    return value


def response(doc: dict[str, Any], path: str, method: str = "get", status: str = "200", **overrides: Any) -> Any:
    """A minimal answer of operation ``method path`` valid for its documented ``status`` schema."""
    answer = _resolve(doc, doc["paths"][path][method]["responses"][status])
    content = answer.get("content", {})
    media = content.get("application/json") or next(iter(content.values()))
    return instance(doc, media["schema"], **overrides)


def example(doc: dict[str, Any], path: str, method: str = "get", status: str = "200") -> Any:
    """A copy of the vendor's own example answer for ``method path`` (OpenAPI 3 ``examples``),
    without null members: PagerDuty's examples put null in optional fields that its schema does
    not mark nullable (``resolve_reason``, ``alert_grouping.ended_at``), which its schema rejects."""
    media = doc["paths"][path][method]["responses"][status]["content"]["application/json"]
    value = media["example"] if "example" in media else next(iter(media["examples"].values()))["value"]
    return _drop_nulls(json.loads(value) if isinstance(value, str) else value)


def _drop_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_nulls(v) for v in value]
    return value


def _resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        node: Any = doc
        for part in schema["$ref"].lstrip("#/").split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        schema = node
    return schema


_FORMATS = {"uri": "https://example.test/x", "date-time": "2026-11-25T12:00:00Z", "email": "ada@example.test",
            "date": "2026-11-25", "uuid": "9f1c0a8e-4b7e-4c7e-9d1a-3b2f6f0d2a11", "int64": 1, "int32": 1}


@functools.cache
def _matching(pattern: str) -> str:
    """The shortest string matching ``pattern``, from the parse tree of Python's regex engine."""
    import re._constants as c
    import re._parser as sre

    def walk(items: Any) -> str:
        out = []
        for op, arg in items:
            if op is c.LITERAL:
                out.append(chr(arg))
            elif op is c.IN:
                out.append(walk(arg[:1]) if arg[0][0] is not c.NEGATE else "_")
            elif op is c.RANGE:
                out.append(chr(arg[0]))
            elif op is c.CATEGORY:
                out.append("0" if arg is c.CATEGORY_DIGIT else "a")
            elif op is c.ANY:
                out.append("a")
            elif op in (c.MAX_REPEAT, c.MIN_REPEAT):
                out.append(walk(arg[2]) * arg[0])
            elif op is c.SUBPATTERN:
                out.append(walk(arg[3]))
            elif op is c.BRANCH:
                out.append(walk(arg[1][0]))
        return "".join(out)

    value = walk(sre.parse(pattern))
    assert re.fullmatch(pattern, value) or re.search(pattern, value), (pattern, value)
    return value


def _instance(doc: dict[str, Any], schema: dict[str, Any], depth: int) -> Any:
    schema = _resolve(doc, schema)
    if depth > 12:
        return None
    if "allOf" in schema:
        out: dict[str, Any] = {}
        for sub in schema["allOf"]:
            part = _instance(doc, sub, depth + 1)
            if isinstance(part, dict):
                out.update(part)
        return out
    for key in ("oneOf", "anyOf"):
        if key in schema:
            return _instance(doc, schema[key][0], depth + 1)
    if "enum" in schema:
        return next((v for v in schema["enum"] if v is not None), None)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or (kind is None and "properties" in schema):
        return {name: _instance(doc, schema["properties"][name], depth + 1)
                for name in schema.get("required", []) if name in schema.get("properties", {})}
    return _scalar(schema, kind)


def _scalar(schema: dict[str, Any], kind: Any) -> Any:
    if kind == "array":
        return []
    if kind in ("integer", "number"):
        return max(1, schema.get("minimum", 1))
    if kind == "boolean":
        return False
    if kind == "string":
        if "pattern" in schema:
            return _matching(schema["pattern"])
        return _FORMATS.get(schema.get("format", ""), "x" * max(1, schema.get("minLength", 1)))
    return None if schema.get("nullable") else {}


# ---------------------------------------------------------------------- GraphQL (Linear)
@functools.cache
def graphql_schema(rel: str) -> Any:
    """The vendor's GraphQL SDL as a graphql-core schema (parsed once per run: ~4 s for Linear's)."""
    import graphql

    path = SPECS / rel
    if not path.exists():
        pytest.fail(f"GraphQL schema {path} is missing: set EMERGENT_VENDOR_SPECS to the vendor-specs directory")
    return graphql.build_ast_schema(graphql.parse(path.read_text(), no_location=True), assume_valid_sdl=True)


class GraphQLValidator:
    """Checks each POST is ``{"query", "variables"}`` whose document validates against the schema."""

    def __init__(self, rel: str) -> None:
        self.schema = graphql_schema(rel)

    def bind(self, base_url: str) -> None:
        pass

    def check(self, request: Request, response: Response | None) -> list[str]:
        import graphql

        if response is not None:
            return []  # answers come from executing the query against the schema itself
        if request.method != "POST" or request.mimetype != "application/json":
            return [f"GraphQL requests are JSON POSTs, got {request.method} {request.mimetype}"]
        body = json.loads(request.get_data())
        try:
            document = graphql.parse(body["query"])
        except (KeyError, graphql.GraphQLError) as exc:
            return [f"query does not parse: {exc}"]
        return [f"query: {e.message}" for e in graphql.validate(self.schema, document)]


def graphql_executor(server: VendorServer, root: dict[str, Any]) -> Handler:
    """A route handler that executes each query against the schema with ``root`` as root value
    (its entries may be callables ``(info, **args)``), so answers have exactly the schema's shape;
    execution errors (a variable of the wrong type, a non-null field left empty) are recorded."""
    import graphql

    def handle(request: Request, _: dict[str, str]) -> tuple[int, Any]:
        body = json.loads(request.get_data())
        result = graphql.graphql_sync(server.validator.schema, body["query"], root_value=root,
                                      variable_values=body.get("variables"))
        server.errors.extend(f"execution: {e.message} at {e.path}" for e in result.errors or [])
        return 200, result.formatted

    return handle
