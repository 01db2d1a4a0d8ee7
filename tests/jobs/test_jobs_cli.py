"""``emergent jobs``, ``emergent kernel`` and the main job's workspace choice, through the real CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from emergent.cli import main
from emergent.mainjob import default_home, repo_root


def cli(*argv: str) -> int:
    """The exit status the console script would give (it does sys.exit(main()))."""
    try:
        result = main(list(argv))
    except SystemExit as exc:
        return int(exc.code or 0)
    return result if isinstance(result, int) else 0


def test_jobs_cli_add_list_show_pause_resume_remove(make_nb, home: Path, capsys) -> None:
    nb = make_nb("cli", "n", params="n = 1")
    assert cli("jobs", "add", "nightly", str(nb), "-s", "0 3 * * *", "-p", "n=7", "--retries", "2", "--home", str(home)) == 0
    assert "added nightly; next run" in capsys.readouterr().out
    assert cli("jobs", "list", "--json", "--home", str(home)) == 0
    (listed,) = json.loads(capsys.readouterr().out)
    assert listed["name"] == "nightly" and listed["parameters"] == {"n": 7} and listed["retries"] == 2
    assert listed["last_status"] is None and not listed["paused"]
    assert cli("jobs", "pause", "nightly", "--home", str(home)) == 0
    assert cli("jobs", "show", "nightly", "--home", str(home)) == 0
    assert '"paused": true' in capsys.readouterr().out
    assert cli("jobs", "resume", "nightly", "--home", str(home)) == 0
    assert cli("jobs", "history", "nightly", "--json", "--home", str(home)) == 0
    assert capsys.readouterr().out.strip().endswith("[]")
    assert cli("jobs", "remove", "nightly", "--home", str(home)) == 0
    assert cli("jobs", "show", "nightly", "--home", str(home)) == 2
    assert "no job named 'nightly'" in capsys.readouterr().err


@pytest.mark.parametrize("argv,message", [
    (["-s", "every banana"], "invalid schedule 'every banana'"),
    (["-p", "n=seven"], "parameter 'n' must be int"),
    (["-p", "n"], "is not NAME=VALUE"),
])
def test_jobs_cli_reports_bad_input_with_a_hint_and_exit_code_2(argv, message, make_nb, home, capsys) -> None:
    nb = make_nb("cli", "n", params="n = 1")
    assert cli("jobs", "add", "bad", str(nb), *argv, "--home", str(home)) == 2
    err = capsys.readouterr().err
    assert message in err and "hint:" in err


def test_kernel_spec_command_prints_the_emergent_kernel(capsys) -> None:
    assert cli("kernel", "spec") == 0
    spec = json.loads(capsys.readouterr().out)
    assert spec["display_name"] == "Emergent" and spec["argv"][-2:] == ["--ext", "emergent"]


def test_the_main_job_uses_the_repository_workspace_when_run_from_the_repository(monkeypatch, tmp_path) -> None:
    monkeypatch.delenv("EMERGENT_HOME")
    monkeypatch.chdir(repo_root())
    assert default_home(None) == str(repo_root() / "workspace")
    monkeypatch.chdir(tmp_path)
    assert default_home(None) is None  # elsewhere: the user data directory
    monkeypatch.setenv("EMERGENT_HOME", str(tmp_path / "w"))
    assert default_home(None) == str(tmp_path / "w") and default_home("/x") == "/x"


def test_the_main_job_runs_the_quickstart_then_the_daily_job_or_says_what_is_missing(home, monkeypatch, capsys) -> None:
    from emergent.errors import ConfigError
    from emergent.mainjob import QUICKSTART, notebooks_dir

    monkeypatch.setenv("EMERGENT_EMBEDDER", "hashing")
    if not (repo_root() / "notebooks" / QUICKSTART).exists():
        with pytest.raises(ConfigError, match="00_quickstart.ipynb was not found"):
            notebooks_dir()
        assert cli("run", "--home", str(home)) == 2
        return
    assert cli("run", "--home", str(home)) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    (executed,) = (home / "runs" / "quickstart").glob("*.ipynb")
    (daily,) = (home / "runs" / "daily_maintenance").glob("*.ipynb")
    assert str(executed) in out and str(daily) in out and "daily_maintenance: succeeded" in out


def test_jobs_cli_run_prints_the_run_and_exits_1_when_the_notebook_fails(make_nb, home, capsys) -> None:
    nb = make_nb("cli_fail", "n = 1", "1 / 0")
    assert cli("jobs", "add", "divide", str(nb), "--home", str(home)) == 0
    capsys.readouterr()
    assert cli("jobs", "run", "divide", "--home", str(home)) == 1
    run = json.loads(capsys.readouterr().out)
    assert run["status"] == "failed" and run["error_name"] == "ZeroDivisionError" and run["error_cell"] == 1
    assert cli("jobs", "history", "--json", "--home", str(home)) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["id"] == run["id"] and Path(row["output_path"]).is_file()
