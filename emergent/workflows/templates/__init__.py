"""The workflow templates shipped with Emergent: YAML specs in this folder (package data).

``names()`` lists them, ``text(name)`` is a template's YAML, ``describe(name)`` its name, description
and inputs (read from the YAML alone: listing templates imports no engine). ``prepare(name, workspace)``
writes what a template needs in the workspace before it first runs: the small notebooks of
``notebook_report_chain`` (built here as JSON, so nothing is downloaded and no notebook library is
needed to write them). A notebook already there is left as it is: it is the user's to edit.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

from emergent.errors import NotFoundError

_SUFFIX = ".yaml"


def _folder() -> Any:
    return resources.files(__name__)


def names() -> list[str]:
    """The templates' names, sorted."""
    return sorted(p.name[: -len(_SUFFIX)] for p in _folder().iterdir() if p.name.endswith(_SUFFIX))


def text(name: str) -> str:
    """Template ``name``'s YAML; NotFoundError (with close matches) when there is none."""
    if name not in names():
        from emergent.registry import suggest

        close = suggest(name, names())
        raise NotFoundError(f"there is no workflow template {name!r}",
                            hint=(f"{close} " if close else "") + f"templates: {', '.join(names())}", template=name)
    return str(_folder().joinpath(name + _SUFFIX).read_text(encoding="utf-8"))


def path(name: str) -> Path:
    """The file of template ``name`` (for ``emergent workflows validate``, or to copy and edit)."""
    text(name)
    return Path(str(_folder().joinpath(name + _SUFFIX)))


def describe(name: str) -> dict[str, Any]:
    """``{"name", "description", "inputs", "steps"}`` of template ``name`` (inputs: name -> default,
    None = required), read from its YAML."""
    import yaml

    data = yaml.safe_load(text(name)) or {}
    return {"name": data.get("name", name), "description": " ".join(str(data.get("description", "")).split()),
            "inputs": dict(data.get("inputs") or {}), "steps": len(data.get("steps") or [])}


# ------------------------------------------------------------------------------ notebooks
def _cell(source: str, *, parameters: bool = False) -> dict[str, Any]:
    return {"cell_type": "code", "execution_count": None, "metadata": {"tags": ["parameters"]} if parameters else {},
            "outputs": [], "source": source}


def _notebook(title: str, params: str, body: str) -> str:
    nb = {"nbformat": 4, "nbformat_minor": 4,
          "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                       "language_info": {"name": "python"}},
          "cells": [{"cell_type": "markdown", "metadata": {}, "source": title},
                    _cell(params, parameters=True), _cell(body)]}
    return json.dumps(nb, indent=1) + "\n"


_REFRESH = _notebook(
    "# Refresh the readings\n\nWrites `out` (CSV: day, station, value) in this folder: `days` days of readings "
    "per station. Replace the body with the real source (a database, an instrument's export) and keep the "
    "columns.",
    'days = 7  # how many days of readings\nseed = 1  # the synthetic source\'s seed\nout = "readings.csv"',
    "import csv\nimport random\n\nrng = random.Random(seed)\n"
    "with open(out, \"w\", newline=\"\") as fh:\n"
    "    w = csv.writer(fh)\n"
    "    w.writerow([\"day\", \"station\", \"value\"])\n"
    "    for day in range(days):\n"
    "        for station, base in ((\"North Buoy\", 7.5), (\"South Pier\", 6.8)):\n"
    "            w.writerow([day, station, round(base + rng.gauss(0, 0.3), 3)])\n"
    "print(f\"wrote {2 * days} readings to {out}\")")

_REPORT = _notebook(
    "# Report\n\nRenders the summary (`columns`, `rows`) as a Markdown table in `out` (this folder).",
    'title = "Station readings"\ncolumns = ["station", "n", "mean", "peak"]\nrows = []\nout = "report.md"',
    "lines = [f\"# {title}\", \"\", \"| \" + \" | \".join(columns) + \" |\", \"|\" + \"---|\" * len(columns)]\n"
    "lines += [\"| \" + \" | \".join(str(v) for v in row) + \" |\" for row in rows]\n"
    "with open(out, \"w\") as fh:\n"
    "    fh.write(\"\\n\".join(lines) + \"\\n\")\n"
    "print(\"\\n\".join(lines))")

#: the files a template needs in the workspace's files directory (path -> contents)
NOTEBOOKS: dict[str, dict[str, str]] = {
    "notebook_report_chain": {"reports/refresh_data.ipynb": _REFRESH, "reports/report.ipynb": _REPORT},
}


def prepare(name: str, workspace: str | Path) -> list[str]:
    """Write the notebooks template ``name`` runs into ``<workspace>/files`` where they are missing;
    returns the paths written (relative to the files directory)."""
    text(name)  # an unknown template is an error here too
    root = Path(workspace) / "files"
    written = []
    for rel, contents in NOTEBOOKS.get(name, {}).items():
        target = root / rel
        if target.exists() or target.is_symlink():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(contents, encoding="utf-8")
        written.append(rel)
    return written
