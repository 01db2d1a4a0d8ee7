"""`import emergent` (and opening memory) pulls no torch, no UI, no playwright, no dask."""

import json
import subprocess
import sys

HEAVY = ["torch", "sentence_transformers", "transformers", "ipywidgets", "playwright", "dask", "emergent.ui",
         "matplotlib", "IPython"]


def _loaded_after(code: str) -> list[str]:
    probe = code + f"\nimport sys, json\nprint(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_import_emergent_loads_no_heavy_modules():
    assert _loaded_after("import emergent") == []


def test_using_memory_on_embedded_defaults_loads_no_ui_or_torch(tmp_path):
    code = (
        "from emergent import Workstation\n"
        f"ws = Workstation.open({str(tmp_path)!r}, embedder='hashing')\n"
        "ws.memory.remember('hello there', importance=0.9)\n"
        "ws.memory.recall('hello')\n"
        "ws.memory.consolidate(principal=ws.principal)\n"
        "ws.close()\n"
    )
    assert _loaded_after(code) == []


def test_missing_extra_error_names_the_install_command():
    from emergent.errors import MissingExtraError

    err = MissingExtraError("the minilm embedder", "minilm", "onnxruntime")
    assert "pip install 'emergent[minilm]'" in str(err)
