"""schemathesis 4 against our own OpenAPI description, in process (ASGI), with an admin token: no
answer is a server error and every answer matches the description. Per operation (a few examples
each) and stateful (sequences through the links schemathesis infers: create, then read and delete
what was created). Bounded so the file stays well under a minute."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from emergent import Workstation
from emergent.api import create_app

CHECKS = [not_a_server_error, response_schema_conformance]


class Api:
    def __init__(self, root: Path) -> None:
        self.ws = Workstation.open(root / "home", embedder="hashing", audit_dir=root / "audit")
        me = self.ws.principal
        self.ws.principals.agent("researcher", created_by=me)
        self.ws.memory.ingest(["the pump runs at 40 Hz", "the grant report is due May 12"], scope="lab")
        self.secret = self.ws.tokens.create(me, "admin", by=me, ttl_s=3600)[1]
        agent = self.ws.principals.agent("researcher")
        self.agent_headers = {"Authorization": f"Bearer {self.ws.tokens.create(agent, 'agent', by=me, ttl_s=3600)[1]}"}
        self.app = create_app(self.ws, config=self.ws.settings.api.model_copy(update={"rate_limit": "100000/second"}))
        self.headers = {"Authorization": f"Bearer {self.secret}"}


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    a = Api(tmp_path_factory.mktemp("schemathesis"))
    yield a
    a.ws.close()


@pytest.fixture(scope="module")
def api_schema(api: Api) -> Any:
    return schemathesis.openapi.from_asgi("/openapi.json", api.app)


EXAMPLES = settings(max_examples=4, deadline=None, derandomize=True, database=None,
                    phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))


def test_the_description_covers_every_area(api_schema: Any) -> None:
    paths = set(api_schema.raw_schema["paths"])
    for prefix in ("/v1/memory", "/v1/tools", "/v1/calls", "/v1/approvals", "/v1/policy", "/v1/audit",
                   "/v1/assistant/runs", "/v1/tokens"):
        assert any(p.startswith(prefix) for p in paths), prefix
    problem = api_schema.raw_schema["paths"]["/v1/memory"]["post"]["responses"]["422"]["content"]
    assert list(problem) == ["application/problem+json"]


def _every_operation(api_schema: Any, headers: dict[str, str], examples: settings) -> int:
    """Every operation, a few generated requests each (schemathesis's pytest loader for fixtures does not
    run under pytest 9, so the operations are driven here with the same strategies); how many ran."""
    failures = []
    ran = 0
    for result in api_schema.get_all_operations():
        op = result.ok()

        @examples
        @given(case=op.as_strategy())
        def check(case: Any) -> None:
            case.call_and_validate(headers=headers, checks=CHECKS)

        try:
            check()
            ran += 1
        except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - every failure, then report them all
            failures.append(f"{op.method.upper()} {op.path}: {exc}")
    assert not failures, "\n\n".join(failures)
    return ran


def test_no_server_error_and_every_answer_matches_the_description(api_schema: Any, api: Api) -> None:
    assert _every_operation(api_schema, api.headers, EXAMPLES) >= 30


def test_an_agent_tokens_answers_match_the_description_too(api_schema: Any, api: Api) -> None:
    """The agent's paths (its own scope, the gate's 202s, the 403/404 of others' things)."""
    assert _every_operation(api_schema, api.agent_headers, settings(EXAMPLES, max_examples=2)) >= 30


def test_stateful_sequences_find_no_server_error(api_schema: Any, api: Api) -> None:
    machine = api_schema.as_state_machine()

    class Machine(machine):  # type: ignore[misc, valid-type]
        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            return {"headers": api.headers}

        def validate_response(self, response: Any, case: Any, additional_checks: Any = None, **kw: Any) -> None:
            case.validate_response(response, checks=CHECKS, transport_kwargs=kw)

    Machine.run(settings=settings(max_examples=30, stateful_step_count=5, deadline=None, derandomize=True,
                                  database=None, suppress_health_check=list(HealthCheck)))


def test_a_call_that_waits_for_approval_is_described_as_a_problem_with_202(api_schema: Any) -> None:
    paths = api_schema.raw_schema["paths"]
    for path, method in (("/v1/memory", "post"), ("/v1/tools/{name}/call", "post"),
                         ("/v1/approvals/{approval_id}/resume", "post")):
        content = paths[path][method]["responses"]["202"]["content"]
        assert content == {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
