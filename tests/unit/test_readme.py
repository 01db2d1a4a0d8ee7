"""The README cannot drift: its Python example runs and every setting is documented."""

import re
from pathlib import Path

from pydantic import BaseModel

from emergent.config import Settings

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()
FLAT_ALIASES = {"INTEGRATIONS"}  # documented by their short names (EMERGENT_GITHUB_TOKEN, ...)


def _documented(prefix: str, group: str | None, name: str) -> bool:
    candidates = [f"{prefix}{name}", f"`__{name}`", f"__{name}`"]
    if group in FLAT_ALIASES:
        candidates.append(f"EMERGENT_{name}")
    return any(c in README for c in candidates)


def test_every_setting_is_documented():
    missing = []
    for name, field in Settings.model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            group = name.upper()
            for sub in ann.model_fields:
                if not _documented(f"EMERGENT_{group}__", group, sub.upper()):
                    missing.append(f"EMERGENT_{group}__{sub.upper()}")
        elif f"EMERGENT_{name.upper()}" not in README:
            missing.append(f"EMERGENT_{name.upper()}")
    assert missing == []


def test_the_python_example_runs(tmp_path, monkeypatch):
    block = re.search(r"From Python:\n\n```python\n(.*?)```", README, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    exec(compile(block.replace("/tmp/emergent-readme", str(tmp_path / "ws")), "README.md", "exec"), {})


def test_quick_start_has_the_two_commands():
    assert "make run" in README and "make test" in README
