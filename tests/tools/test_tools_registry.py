"""The versioned registry: SQL persistence, resolution, enable/disable, dependencies."""

import pytest

from emergent.errors import DependencyConflictError, NotFoundError, UsageError
from emergent.tools import tool
from emergent.tools.registry import ToolRegistry


def make(name, version, requires=None, python_requires=()):
    @tool(name=name, version=version, requires=requires or {}, python_requires=python_requires)
    def f(x: int) -> int:
        """Echo x."""
        return x

    return f


@pytest.fixture
def reg(store):
    r = ToolRegistry(store, entry_points=False)
    r.add(make("echo", "1.0.0"), make("echo", "1.4.2"), make("echo", "1.9.0"), make("echo", "2.0.0"))
    return r


@pytest.mark.parametrize(("ref", "version"), [
    ("echo", "2.0.0"), ("echo@1.4.2", "1.4.2"), ("echo@^1.2", "1.9.0"), ("echo@~1.4", "1.4.2"),
    ("echo@<1.4", "1.0.0"),
])
def test_resolve_name_exact_and_ranges(reg, ref, version):
    assert reg.resolve(ref).version == version


def test_unknown_names_suggest_close_ones_and_unknown_versions_list_the_known(reg):
    with pytest.raises(NotFoundError, match="did you mean 'echo'"):
        reg.resolve("ecoh")
    with pytest.raises(NotFoundError, match="available versions: 1.0.0, 1.4.2, 1.9.0, 2.0.0"):
        reg.resolve("echo@3.1.0")


def test_every_version_is_kept_in_sql_with_its_flags(reg, store):
    reg.disable("echo@2.0.0")
    reg.deprecate("echo@1.0.0", successor="echo@^2", note="use 2.x")
    again = ToolRegistry(store, entry_points=False)
    infos = {v.version: v for v in again.versions("echo")}
    assert set(infos) == {"1.0.0", "1.4.2", "1.9.0", "2.0.0"}
    assert not infos["2.0.0"].enabled and infos["1.0.0"].deprecated and infos["1.0.0"].successor == "echo@^2"
    assert not infos["1.9.0"].loaded  # recorded, but no code in this registry


def test_disabled_versions_are_skipped_and_a_fully_disabled_range_says_how_to_enable(reg):
    reg.disable("echo@2.0.0")
    assert reg.resolve("echo").version == "1.9.0"
    reg.disable("echo")
    with pytest.raises(UsageError, match="emergent tools enable echo@2.0.0"):
        reg.resolve("echo")
    reg.enable("echo@^1")
    assert reg.resolve("echo").version == "1.9.0"


def test_recorded_but_unloaded_versions_ask_for_the_code(reg, store):
    fresh = ToolRegistry(store, entry_points=False)
    with pytest.raises(NotFoundError, match="code is not loaded"):
        fresh.resolve("echo")


def test_dependency_closure_picks_compatible_versions(reg):
    reg.add(make("app", "1.0.0", {"echo": "^1.2"}))
    assert {k: s.version for k, s in reg.closure("app").items()} == {"app": "1.0.0", "echo": "1.9.0"}


def test_dependency_conflict_names_the_pair(reg):
    reg.add(make("lib", "1.0.0", {"echo": ">=2"}), make("app", "1.0.0", {"echo": "^1.2", "lib": "*"}))
    with pytest.raises(DependencyConflictError) as e:
        reg.closure("app")
    assert "app@1.0.0 needs echo@^1.2 but lib@1.0.0 needs echo@>=2" in str(e.value)
    assert e.value.pair == ("app@1.0.0", "lib@1.0.0")


def test_unsatisfiable_and_unknown_dependencies(reg):
    reg.add(make("app", "1.0.0", {"echo": "^7"}), make("other", "1.0.0", {"ecoh": "*"}))
    with pytest.raises(DependencyConflictError, match="available versions of echo"):
        reg.closure("app")
    with pytest.raises(DependencyConflictError, match="did you mean 'echo'"):
        reg.closure("other")


def test_python_requirements_are_checked(reg):
    reg.add(make("needs_pkg", "1.0.0", python_requires=("definitely-not-installed-pkg>=1",)),
            make("needs_new", "1.0.0", python_requires=("pydantic>=999",)))
    with pytest.raises(DependencyConflictError, match="pip install 'definitely-not-installed-pkg>=1'"):
        reg.closure("needs_pkg")
    with pytest.raises(DependencyConflictError, match="is installed"):
        reg.closure("needs_new")


def test_builtins_load_through_the_entry_point_group(store):
    r = ToolRegistry(store)
    assert {"python", "shell", "http_get", "files.read", "sql", "memory.recall", "notebook.run"} <= set(r.names())
    assert r.resolve("files.read").source.startswith("entry-point:")


def test_install_from_a_python_file(store, tmp_path):
    src = tmp_path / "mytools.py"
    src.write_text("from emergent.tools import tool\n\n@tool(version='0.3.0')\ndef shout(text: str) -> str:\n"
                   "    '''Shout.'''\n    return text.upper()\n")
    r = ToolRegistry(store, entry_points=False)
    assert [s.key for s in r.install(str(src))] == ["shout@0.3.0"]
    assert r.resolve("shout").invoke({"text": "hi"}) == "HI"
    with pytest.raises(NotFoundError):
        r.install(str(tmp_path / "missing.py"))


def test_deprecated_versions_still_run_but_name_their_successor(reg):
    reg.deprecate("echo@2.0.0", successor="echo@^1.9", note="2.x was a mistake")
    with pytest.warns(DeprecationWarning, match=r"use echo@\^1.9 \(2.x was a mistake\)"):
        assert reg.resolve("echo").version == "2.0.0"
    with pytest.raises(NotFoundError, match="unknown tool"):
        reg.deprecate("echo@1.0.0", successor="nothing")


def test_registry_changes_through_the_service_are_a_humans_and_audited(ws, me, agent, tmp_path):
    from emergent.errors import PrincipalError

    ws.tools.disable("files.read", by=me)
    ws.tools.deprecate("files.list@1.0.0", by=me, successor="files.list@^2", note="demo")
    src = tmp_path / "mytools.py"
    src.write_text("from emergent.tools import tool\n\n@tool(version='0.3.0')\ndef shout(text: str) -> str:\n"
                   "    '''Shout.'''\n    return text.upper()\n")
    assert [s.key for s in ws.tools.install(str(src), by=me)] == ["shout@0.3.0"]
    for change in (lambda by: ws.tools.enable("files.read", by=by), lambda by: ws.tools.disable("files.write", by=by),
                   lambda by: ws.tools.install(str(src), by=by)):
        with pytest.raises(PrincipalError):
            change(agent)
        with pytest.raises(PrincipalError, match="not a principal"):
            change("human:" + me.id)  # a name is not a person
    assert not ws.tools.versions("files.read")[0].enabled and ws.tools.versions("files.write")[0].enabled
    kinds = {e.kind: e for e in ws.audit.entries() if e.kind.startswith("tool.")}
    assert {k: kinds[k].actor for k in ("tool.disabled", "tool.deprecated", "tool.installing", "tool.installed")} \
        == dict.fromkeys(("tool.disabled", "tool.deprecated", "tool.installing", "tool.installed"), me.key)
    assert kinds["tool.installed"].data["versions"] == ["shout@0.3.0"]
