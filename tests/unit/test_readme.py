"""The README cannot drift: its Python example runs and every setting is documented."""

import re
from pathlib import Path

from emergent.config import MemoryConfig, Settings

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def _env_names(model: type, prefix: str) -> list[str]:
    return [f"{prefix}{name.upper()}" for name in model.model_fields]


def test_every_setting_is_documented():
    undocumented = []
    for name in _env_names(Settings, "EMERGENT_"):
        if name == "EMERGENT_MEMORY":
            continue
        if name not in README:
            undocumented.append(name)
    for field in MemoryConfig.model_fields:
        if f"EMERGENT_MEMORY__{field.upper()}" not in README and f"__{field.upper()}" not in README:
            undocumented.append(f"EMERGENT_MEMORY__{field.upper()}")
    assert undocumented == []


def test_the_python_example_runs(tmp_path, monkeypatch):
    block = re.search(r"From Python:\n\n```python\n(.*?)```", README, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    exec(compile(block.replace("/tmp/emergent-readme", str(tmp_path / "ws")), "README.md", "exec"), {})


def test_quick_start_has_the_two_commands():
    assert "make run" in README and "make test" in README
