"""docs/deploy.md stays true: its nginx configuration is accepted by the real nginx, and every
EMERGENT_* variable it names is a setting emergent reads."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from _harness import ROOT, free_port

from emergent.config import Settings

DOC = ROOT / "docs" / "deploy.md"


def test_deploy_doc_nginx_configuration_is_accepted_by_nginx(tmp_path: Path) -> None:
    block = DOC.read_text().split("```nginx\n", 1)[1].split("```", 1)[0]
    block = (block.replace("api-1:8765", f"127.0.0.1:{free_port()}").replace("api-2:8765", f"127.0.0.1:{free_port()}")
             .replace("listen 443 ssl;", f"listen 127.0.0.1:{free_port()};"))
    block = "\n".join(line for line in block.splitlines() if "ssl_certificate" not in line)  # no certificate here
    temp = " ".join(f"{d}_temp_path {tmp_path}/{d};" for d in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    conf = tmp_path / "nginx.conf"
    conf.write_text(f"pid {tmp_path}/nginx.pid; error_log {tmp_path}/error.log; events {{}}\n"
                    f"http {{ access_log off; {temp}\n{block}\n}}\n")
    proc = subprocess.run(["/usr/sbin/nginx", "-t", "-c", str(conf), "-p", str(tmp_path)], capture_output=True,
                          text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr


def _settings_names() -> set[str]:
    names = set()
    for name, field in Settings.model_fields.items():
        names.add(f"EMERGENT_{name.upper()}")
        sub = getattr(field.annotation, "model_fields", None)
        if sub:
            names.update(f"EMERGENT_{name.upper()}__{n.upper()}" for n in sub)
    return names


def test_every_variable_in_the_deploy_doc_is_a_setting() -> None:
    text = DOC.read_text()
    found = re.findall(r"(EMERGENT_[A-Z_]*[A-Z])(_{1,2}\*)?", text)
    named = {n for n, star in found if not star}
    prefixes = {n + "_" for n, star in found if star}  # EMERGENT_LLM_*, EMERGENT_MEMORY__*
    # `EMERGENT_API__HOST`, `__PORT`, ...: the table abbreviates a section's later names
    named |= {f"EMERGENT_{sec}__{n}" for sec, rest in re.findall(r"`EMERGENT_([A-Z]+)__[A-Z_]+`((?:, `__[A-Z_]+`)+)", text)
              for n in re.findall(r"`__([A-Z_]+)`", rest)}
    known = _settings_names()
    unknown = {n for n in named if n not in known}
    unknown |= {p for p in prefixes if not any(k.startswith(p) for k in known)}
    assert not unknown, sorted(unknown)
