"""``emergent browser`` as a person runs it, in this process (typer's app through ``emergent.cli.main``) on
a real workspace, a real Chromium and the loopback DemoSite: scripts and templates listed and shown, a
replay with a parameter and a secret that submits the form, a replay that heals and proposes a version
that is then accepted, a failed replay (exit 1), an extraction to CSV across pages, the runs; every
mistake is one error line and a hint, never a traceback."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from _surfaces import PASSWORD, login_script, table_template

from emergent.browser.model import Action, Script, Target


@pytest.fixture(scope="module")
def saved(ws: Any, human: Any, site: Any) -> dict[str, Any]:
    svc = ws.browser
    svc.save_script(login_script(site), by=human)
    svc.save_script(login_script(site, "healing-login", first="#e-mail-gone"), by=human)
    svc.save_script(Script(name="broken", actions=[
        Action(kind="navigate", value=site.url("/login")),
        Action(kind="click", target=Target.of("#no-such-button"), timeout_ms=300)]), by=human)
    svc.save_template(table_template(site), by=human)
    return {}


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, home: Path, site: Any,
        saved: dict[str, Any]) -> Any:
    monkeypatch.setenv("EMERGENT_HOME", str(home))
    monkeypatch.setenv("EMERGENT_EMBEDDER", "hashing")
    monkeypatch.setenv("EMERGENT_BROWSER__ALLOW_HOSTS", json.dumps([site.host]))
    monkeypatch.setenv("EMERGENT_BROWSER__SECRETS", json.dumps({"portal_password": PASSWORD}))
    monkeypatch.setenv("EMERGENT_BROWSER__TIMEOUT_MS", "3000")
    monkeypatch.setenv("COLUMNS", "250")
    monkeypatch.setenv("NO_COLOR", "1")

    def run(*args: str) -> tuple[int, str, str]:
        from emergent.cli import main

        argv = sys.argv[:]
        try:
            code = int(main(["browser", *args]) or 0)
        except SystemExit as exc:
            code = int(exc.code or 0)
        finally:
            sys.argv[:] = argv
        out, err = capsys.readouterr()
        return code, out, err

    return run


def cells(out: str) -> list[list[str]]:
    """The body rows of a rich table printed to the terminal, as lists of cell texts."""
    return [[c.strip() for c in line.strip("│ ").split("│")] for line in out.splitlines() if line.startswith("│")]


def test_saved_scripts_and_templates_are_listed_with_version_and_status(cli: Any) -> None:
    code, out, _ = cli("scripts")
    assert code == 0
    listed = {tuple(r[:3]) for r in cells(out)}
    assert {("broken", "1.0.0", "active"), ("healing-login", "1.0.0", "active"),
            ("portal-login", "1.0.0", "active")} <= listed, out
    code, out, _ = cli("templates", "--json")
    assert code == 0 and [(r["name"], r["version"], r["status"]) for r in json.loads(out)] == \
        [("assays", "1.0.0", "active")]


def test_show_prints_the_yaml_and_the_secrets_a_replay_needs_never_their_values(cli: Any) -> None:
    code, out, _ = cli("show", "portal-login")
    assert code == 0
    body = out[out.index("# script portal-login 1.0.0"):]
    assert Script.from_yaml(body.split("\n", 1)[1].rsplit("# needs secrets", 1)[0]).name == "portal-login"
    assert "# needs secrets: portal_password" in out and PASSWORD not in out
    code, out, _ = cli("show", "assays")  # only a template has that name
    assert code == 0 and "# template assays 1.0.0" in out and "tr.result-row" in out


def test_a_replay_with_a_parameter_and_a_secret_submits_the_form(cli: Any, site: Any) -> None:
    before = len(site.submissions)
    code, out, err = cli("replay", "portal-login", "--param", "email=grace@example.org")
    assert code == 0, out + err
    assert ": completed in" in out and "0 step(s) healed" in out
    assert site.submissions[before:] == [{**site.submissions[before], "email": "grace@example.org",
                                          "password": PASSWORD}]
    assert PASSWORD not in out + err


def test_a_replay_that_heals_proposes_a_version_which_a_person_accepts(cli: Any, ws: Any) -> None:
    code, out, err = cli("replay", "healing-login", "--json")
    assert code == 0, out + err
    result = json.loads(out)
    assert result["status"] == "completed" and result["healed"] == 1
    fill = result["steps"][1]
    assert (fill["status"], fill["healed_by"], fill["used"]["kind"]) == ("healed", "alternative", "label")
    proposed = result["proposed_version"]
    assert proposed == "1.1.0"
    code, out, _ = cli("scripts")
    assert ["healing-login", proposed, "proposed"] in [r[:3] for r in cells(out)], out
    code, out, _ = cli("accept", "healing-login", proposed)
    assert (code, out.strip()) == (0, f"script healing-login {proposed}: active")
    assert ws.browser.script("healing-login").version == proposed
    healed = ws.browser.script("healing-login")
    assert healed.actions[1].target.candidates[0].kind == "label"  # what worked leads now
    code, out, _ = cli("show", "healing-login", "--version", "1.0.0")
    assert code == 0 and "# script healing-login 1.0.0" in out and "#e-mail-gone" in out
    code, out, _ = cli("show", "healing-login")  # the newest active one
    assert code == 0 and f"# script healing-login {proposed}" in out
    code, _, err = cli("accept", "healing-login", proposed)  # only a proposed version can be accepted
    assert code == 2 and err.startswith("error: ") and "hint: " in err and "Traceback" not in err


def test_a_failed_replay_exits_1_and_says_which_step_failed(cli: Any) -> None:
    code, out, err = cli("replay", "broken", "--no-heal")
    assert code == 1
    assert "failed" in out and "#no-such-button" in err


def test_extract_writes_the_pages_read_to_csv_or_shows_them(cli: Any, tmp_path: Path) -> None:
    from emergent.browser.demo import TABLE

    path = tmp_path / "assays.csv"
    code, out, err = cli("extract", "assays", "--csv", str(path), "--max-pages", "3")
    assert code == 0, out + err
    assert out.strip() == f"30 rows, 3 columns → {path}"
    with path.open() as fh:
        rows = list(csv.DictReader(fh))
    assert [r["compound"] for r in rows] == [r["compound"] for r in TABLE[:30]]
    assert [float(r["ic50_nm"]) for r in rows] == [r["ic50_nm"] for r in TABLE[:30]]
    code, out, _ = cli("extract", "assays", "--max-pages", "1")
    assert code == 0 and "assays: 10 rows" in out
    assert [r[0] for r in cells(out)] == [r["compound"] for r in TABLE[:10]]


def test_runs_lists_the_replays_newest_first(cli: Any, ws: Any, human: Any) -> None:
    ws.browser.replay("portal-login", by=human)
    code, out, _ = cli("runs", "--script", "portal-login", "--json")
    found = json.loads(out)
    assert code == 0 and found and all(r["script"] == "portal-login" for r in found)
    assert found[0]["status"] == "completed" and found[0]["principal"] == human.key
    assert [r["started_at"] for r in found] == sorted((r["started_at"] for r in found), reverse=True)
    code, out, _ = cli("runs")
    assert code == 0 and found[0]["id"] in out


@pytest.mark.parametrize(("args", "says"), [
    (("show", "nope"), "no script named 'nope'"),
    (("replay", "portal-login", "--param", "email"), "is not NAME=VALUE"),
    (("replay", "nope"), "nope"),
    (("extract", "nope"), "nope"),
    (("accept", "portal-login", "9.9.9"), "9.9.9"),
    (("extract", "assays", "--csv", "/no/such/dir/x.csv"), "no directory"),
])
def test_mistakes_are_one_line_and_a_hint(cli: Any, args: tuple[str, ...], says: str) -> None:
    code, out, err = cli(*args)
    assert code == 2
    lines = err.strip().splitlines()
    assert lines[0].startswith("error: ") and says in lines[0]
    assert len(lines) == 2 and lines[1].startswith("hint: ")
    assert "Traceback" not in out + err


def test_the_installed_command_says_where_to_record_and_refuses_an_unknown_script(home: Path, saved: Any) -> None:
    import os
    import subprocess

    exe = str(Path(sys.executable).with_name("emergent"))
    env = {**os.environ, "EMERGENT_HOME": str(home), "EMERGENT_EMBEDDER": "hashing", "NO_COLOR": "1",
           "COLUMNS": "200"}
    helped = subprocess.run([exe, "browser", "--help"], env=env, capture_output=True, text=True, timeout=60)
    assert helped.returncode == 0 and "record in a notebook" in " ".join(helped.stdout.split())
    p = subprocess.run([exe, "browser", "show", "nope"], env=env, capture_output=True, text=True, timeout=60)
    assert p.returncode == 2
    assert p.stderr.splitlines() == ["error: no script named 'nope'",
                                     "hint: saved scripts: broken, healing-login, portal-login "
                                     "(`emergent browser scripts`)"]
