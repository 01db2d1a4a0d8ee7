"""The built-in tools. They register through the ``emergent.tools`` entry point exactly like a
third-party package: ``builtin = "emergent.tools.builtin:TOOLS"``."""

from __future__ import annotations

from emergent.tools.builtin import code, data, files, memory, notebook, web

TOOLS = [*code.TOOLS, *web.TOOLS, *files.TOOLS, *data.TOOLS, *memory.TOOLS, *notebook.TOOLS]

__all__ = ["TOOLS"]
