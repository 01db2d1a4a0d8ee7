"""The runner's wrappers: retry, breaker, timeout, result checks, telemetry, audit, approvals."""

import threading
import time

import pytest

from emergent.autonomy.service import Autonomy
from emergent.clock import FakeClock
from emergent.errors import (
    ApprovalPending,
    ApprovalStaleError,
    CircuitOpenError,
    PermissionDenied,
    PrincipalError,
    TimeoutExceeded,
    ToolExecutionError,
    TransientError,
    UsageError,
    ValidationError,
)
from emergent.principals import Principals
from emergent.tools import RetryPolicy, ToolContext, tool
from emergent.tools.registry import ToolRegistry
from emergent.tools.runner import CircuitBreaker, ToolRunner
from emergent.tools.telemetry import Telemetry


class Flaky:
    def __init__(self, fail_times, exc=TransientError):
        self.left, self.exc, self.calls = fail_times, exc, 0

    def __call__(self, x: int) -> int:
        self.calls += 1
        if self.left > 0:
            self.left -= 1
            raise self.exc("boom")
        return x * 2


def flaky_tool(flaky, attempts=3):
    def double(x: int) -> int:
        """Double x."""
        return flaky(x)

    return tool(double, version="1.0.0", retry=RetryPolicy(attempts=attempts, initial=0.001, max_wait=0.01,
                                                           jitter=0.001))


@pytest.fixture
def env(store):
    clock = FakeClock()
    auto = Autonomy(store, clock=clock)
    reg = ToolRegistry(store, entry_points=False, clock=clock)
    tel = Telemetry(store, flush_interval=None)
    runner = ToolRunner(reg, autonomy=auto, telemetry=tel, clock=clock, sleep=lambda s: None)
    yield reg, runner, auto, tel, clock
    runner.close()
    tel.close()
    auto.close()


@pytest.fixture
def human(env):
    """The OS user, issued by the gate's directory."""
    return env[2].principals.os_user()


@pytest.fixture
def scout(env, human):
    """An agent the human created."""
    return env[2].principals.agent("scout", created_by=human)


@pytest.fixture
def me(store):
    """A principal for runners without a gate (issued by a directory on the same store)."""
    return Principals(store).os_user()


def test_retries_transient_errors_with_backoff_and_records_attempts(env, human):
    reg, runner, auto, tel, _ = env
    f = Flaky(2)
    reg.add(flaky_tool(f))
    assert runner.call("double", {"x": 4}, principal=human) == 8
    assert f.calls == 3
    row = tel.rows("double")[0]
    assert row["outcome"] == "ok" and row["attempts"] == 3


def test_non_retryable_errors_are_not_retried_and_are_wrapped_clearly(env, human):
    reg, runner, *_ = env
    f = Flaky(1, exc=ValueError)
    reg.add(flaky_tool(f))
    with pytest.raises(ToolExecutionError, match="raised ValueError: boom") as e:
        runner.call("double", {"x": 1}, principal=human)
    assert f.calls == 1 and isinstance(e.value.__cause__, ValueError)


def test_retries_give_up_after_the_policy_attempts(env, human):
    reg, runner, _, tel, _ = env
    f = Flaky(10)
    reg.add(flaky_tool(f, attempts=3))
    with pytest.raises(TransientError):
        runner.call("double", {"x": 1}, principal=human)
    assert f.calls == 3 and tel.rows("double")[0]["error_class"] == "TransientError"


def test_circuit_breaker_opens_after_repeated_failures_and_recovers(store, me):
    clock = FakeClock()
    f = Flaky(100, exc=RuntimeError)
    reg = ToolRegistry(store, entry_points=False)
    reg.add(flaky_tool(f, attempts=1))
    runner = ToolRunner(reg, breaker=CircuitBreaker(clock, threshold=3, cooldown=10), clock=clock)
    for _ in range(3):
        with pytest.raises(ToolExecutionError):
            runner.call("double", {"x": 1}, principal=me)
    with pytest.raises(CircuitOpenError, match="open for 10 s"):
        runner.call("double", {"x": 1}, principal=me)
    assert f.calls == 3
    clock.advance(11)
    f.left = 0
    assert runner.call("double", {"x": 2}, principal=me) == 4 and runner.breaker.state("double@1.0.0") == "closed"


def test_hanging_tool_times_out_and_the_caller_goes_on(store, me):
    release = threading.Event()

    @tool(timeout=0.2)
    def hang() -> int:
        """Hang."""
        release.wait(10)
        return 1

    reg = ToolRegistry(store, entry_points=False)
    reg.add(hang)
    t0 = time.monotonic()
    with pytest.raises(TimeoutExceeded, match="did not finish within 0.2 s"):
        ToolRunner(reg).call("hang", principal=me)
    assert time.monotonic() - t0 < 2
    release.set()


def test_wrong_result_type_and_bad_arguments_fail_before_or_after_running(env, human):
    reg, runner, _, tel, _ = env

    @tool
    def liar(x: int) -> int:
        """Return the wrong type."""
        return "x"  # type: ignore[return-value]

    reg.add(liar)
    with pytest.raises(ToolExecutionError, match="not its declared result type"):
        runner.call("liar", {"x": 1}, principal=human)
    with pytest.raises(ValidationError, match="x: Input should be a valid integer"):
        runner.call("liar", {"x": "nope"}, principal=human)
    assert [r["outcome"] for r in tel.rows("liar")] == ["invalid", "error"]


def test_every_call_lands_in_the_audit_chain_with_its_decision(env, human):
    reg, runner, auto, *_ = env
    reg.add(flaky_tool(Flaky(0)))
    runner.call("double", {"x": 1}, principal=human)
    entry = auto.audit.entries(kind="tool.call")[-1]
    assert entry.actor == human.key and entry.data["outcome"] == "ok" and entry.data["decision"] == "allow"
    assert auto.audit.verify().ok


def test_denied_calls_do_not_run(env, human):
    reg, runner, auto, *_ = env
    f = Flaky(0)
    reg.add(flaky_tool(f))
    rogue = auto.principals.agent("rogue", created_by=human)
    auto.add_rule("agent:rogue", "double", "deny", by=human)
    with pytest.raises(PermissionDenied, match="deny overrides"):
        runner.call("double", {"x": 1}, principal=rogue)
    assert f.calls == 0


def test_asked_call_waits_and_resumes_when_approved_in_another_thread(env, human, scout):
    reg, runner, auto, *_ = env
    f = Flaky(0)
    reg.add(tool(f.__call__, name="write_it", version="1.0.0", side_effect="write"))
    fut = runner.submit("write_it", {"x": 5}, principal=scout)
    for _ in range(200):
        pending = auto.approvals.list()
        if pending:
            break
        time.sleep(0.01)
    assert f.calls == 0 and pending[0].tool == "write_it@1.0.0" and pending[0].actor == "agent:scout"
    auto.approvals.approve(pending[0].id, by=human, reason="fine")
    assert fut.result(timeout=5) == 10 and f.calls == 1
    assert auto.approvals.get(pending[0].id).status == "consumed"


def test_rejected_and_pending_approvals_fail_clearly_and_resume_once(env, human, scout):
    reg, runner, auto, *_ = env
    f = Flaky(0)
    reg.add(tool(f.__call__, name="write_it", version="1.0.0", side_effect="write"))
    with pytest.raises(ApprovalPending, match="approvals approve") as e:
        runner.call("write_it", {"x": 1}, principal=scout, wait=False)
    aid = e.value.approval
    with pytest.raises(ApprovalPending):
        runner.resume(aid)
    auto.approvals.approve(aid, by=human)
    assert runner.resume(aid) == 2 and f.calls == 1
    with pytest.raises(PermissionDenied, match="already used"):
        runner.resume(aid)
    assert f.calls == 1
    fut = runner.submit("write_it", {"x": 1}, principal=scout)
    while not auto.approvals.list():
        time.sleep(0.01)
    auto.approvals.reject(auto.approvals.list()[0].id, by=human, reason="not today")
    with pytest.raises(PermissionDenied, match=f"rejected by {human.key}: not today"):
        fut.result(timeout=5)
    assert f.calls == 1


def test_telemetry_batches_rows_and_computes_stats_on_every_sql_backend(sql_url):
    from emergent.stores.sql import SQLStore

    s = SQLStore(sql_url)
    tel = Telemetry(s, flush_every=3, flush_interval=None)
    for i, outcome in enumerate(["ok", "ok", "error", "ok"]):
        tel.record((1000.0 + i, f"c{i}", "t", "1.0.0", "agent:a", float(i + 1), outcome, 1,
                    None if outcome == "ok" else "ValueError", None if outcome == "ok" else "bad"))
    (st,) = tel.stats("t")
    assert (st.calls, st.success_rate, st.p50_ms) == (4, 0.75, 2.5)
    assert st.last_error == "ValueError: bad" and st.last_error_at == 1002.0
    tel.close()
    s.dispose()


def test_calls_check_dependencies_once_and_name_the_conflict(store, me):
    from emergent.errors import DependencyConflictError

    def mk(name, version, requires=None, python_requires=()):
        def f(x: int) -> int:
            """Echo."""
            return x

        return tool(f, name=name, version=version, requires=requires or {}, python_requires=python_requires)

    reg = ToolRegistry(store, entry_points=False)
    reg.add(mk("base", "1.0.0"), mk("app", "1.0.0", {"base": "^2"}),
            mk("needy", "1.0.0", python_requires=("surely-missing-package>=1",)), mk("ok", "1.0.0", {"base": "^1"}))
    runner = ToolRunner(reg)
    with pytest.raises(DependencyConflictError, match=r"app@1.0.0 needs base@\^2"):
        runner.call("app", {"x": 1}, principal=me)
    with pytest.raises(DependencyConflictError, match="pip install 'surely-missing-package>=1'"):
        runner.call("needy", {"x": 1}, principal=me)
    assert runner.call("ok", {"x": 3}, principal=me) == 3


def test_disabling_in_another_process_is_seen(store, me):
    reg = ToolRegistry(store, entry_points=False, refresh_interval=0.0)
    reg.add(flaky_tool(Flaky(0)))
    other = ToolRegistry(store, entry_points=False)
    other.disable("double")
    with pytest.raises(Exception, match="disabled"):
        ToolRunner(reg).call("double", {"x": 1}, principal=me)


def test_a_call_that_acts_outside_the_workspace_is_audited_on_disk_before_it_returns(env, store, human):
    import sqlalchemy as sa

    from emergent.autonomy.tables import audit_log
    from emergent.tools import SideEffect

    reg, runner, auto, tel, clock = env

    def ping(x: int) -> int:
        """Ping something outside."""
        return x

    reg.add(tool(ping, version="1.0.0", side_effect=SideEffect.EXTERNAL))
    runner.call("ping", {"x": 1}, principal=human)
    with store.connect() as conn:  # read the table itself: AuditLog.entries() would flush first
        kinds = [r.kind for r in conn.execute(sa.select(audit_log.c.kind))]
    assert "tool.intent" in kinds and "tool.call" in kinds


def test_a_call_needs_a_principal_of_this_gate(env, human, tmp_path):
    from emergent.stores.sql import SQLStore

    reg, runner, auto, *_ = env
    f = Flaky(0)
    reg.add(flaky_tool(f))
    for who in (None, "human:" + human.id, "agent:scout"):
        with pytest.raises(PrincipalError, match="not a principal"):
            runner.call("double", {"x": 1}, principal=who)
    other = SQLStore(f"sqlite:///{tmp_path / 'other.db'}")
    try:
        stranger = Principals(other).os_user()  # same name, another directory: another seal
        with pytest.raises(PrincipalError, match="not issued by this workspace"):
            runner.call("double", {"x": 1}, principal=stranger)
    finally:
        other.dispose()
    assert f.calls == 0 and any(e.kind == "tool.refused" for e in auto.audit.entries())


def test_a_bare_runner_still_wants_a_principal(store):
    reg = ToolRegistry(store, entry_points=False)
    reg.add(flaky_tool(Flaky(0)))
    with pytest.raises(PrincipalError, match="every tool call needs one"):
        ToolRunner(reg).call("double", {"x": 1}, principal="user:local")


def test_tool_service_refuses_the_old_keywords(store):
    from emergent.tools.service import ToolService

    svc = ToolService(store, entry_points=False)
    try:
        with pytest.raises(UsageError, match="does not take actor"):
            svc.call("files.read", {"path": "x"}, actor="user:ana")
        with pytest.raises(PrincipalError, match="needs a principal"):
            svc.call("files.read", {"path": "x"})
    finally:
        svc.close()


def _script_tool(ran):
    """A tool that runs the script it reads: its approval is bound to the script's bytes."""
    def reads(kwargs, ctx):
        return {kwargs["path"]: (ctx.workspace / kwargs["path"]).read_bytes()}

    def run_script(path: str, ctx: ToolContext) -> str:
        """Run a script (here: remember what would run)."""
        ran.append(ctx.contents[path].decode())
        return ctx.contents[path].decode()

    return tool(run_script, name="script.run", version="1.0.0", side_effect="write", resource="path",
                reads=reads)


@pytest.fixture
def script_env(store, tmp_path):
    auto = Autonomy(store)
    reg = ToolRegistry(store, entry_points=False)
    runner = ToolRunner(reg, autonomy=auto, context=lambda call: ToolContext(
        principal=call.principal, call_id=call.call_id, workspace=tmp_path))
    ran: list[str] = []
    reg.add(_script_tool(ran))
    human = auto.principals.os_user()
    yield runner, auto, human, auto.principals.agent("scout", created_by=human), ran
    runner.close()
    auto.close()


def test_an_approval_is_bound_to_the_bytes_of_the_file_the_call_runs(script_env, tmp_path):
    import hashlib

    runner, auto, human, scout, ran = script_env
    (tmp_path / "job.py").write_text("print('safe')")
    with pytest.raises(ApprovalPending) as e:
        runner.call("script.run", {"path": "job.py"}, principal=scout, wait=False)
    a = auto.approvals.get(e.value.approval)
    assert a.files == {"job.py": hashlib.sha256(b"print('safe')").hexdigest()} and len(a.digest) == 64
    auto.approvals.approve(a.id, by=human)
    (tmp_path / "job.py").write_text("import shutil; shutil.rmtree('/')")  # swapped after the approval
    with pytest.raises(ApprovalStaleError, match="job.py"):
        runner.resume(a.id)
    assert ran == [] and auto.approvals.get(a.id).status == "approved"
    (tmp_path / "job.py").write_text("print('safe')")  # the approved content again: it runs, once
    assert runner.resume(a.id) == "print('safe')" and ran == ["print('safe')"]
    with pytest.raises(PermissionDenied, match="already used"):
        runner.resume(a.id)
    assert ran == ["print('safe')"]
