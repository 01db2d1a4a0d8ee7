"""MCP both ways (the official ``mcp`` SDK, ``pip install 'emergent[mcp]'``).

- :mod:`emergent.mcp.server`: ``emergent mcp serve`` exposes the registry's enabled tools to any MCP
  client (stdio, or streamable HTTP with bearer tokens); every call passes the autonomy gate as the
  session's principal.
- :mod:`emergent.mcp.client`: ``emergent tools install mcp+stdio:CMD ...`` / ``mcp+http(s)://URL``
  registers another server's tools as versioned emergent tools behind the same gate.
- :mod:`emergent.mcp.tokens`: the bearer tokens (stored hashed) that map HTTP clients to principals.
"""

from __future__ import annotations

from typing import Any

_LAZY = {
    "MCPServer": "emergent.mcp.server",
    "MCPClients": "emergent.mcp.client",
    "TokenStore": "emergent.mcp.tokens",
    "SchemaToolSpec": "emergent.mcp.spec",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        try:
            module = importlib.import_module(_LAZY[name])
        except ModuleNotFoundError as exc:
            if exc.name == "mcp" or (exc.name or "").startswith("mcp."):
                from emergent.errors import MissingExtraError

                raise MissingExtraError("MCP", "mcp", "mcp") from None
            raise
        return getattr(module, name)
    raise AttributeError(f"module 'emergent.mcp' has no attribute {name!r}")


__all__ = ["MCPClients", "MCPServer", "SchemaToolSpec", "TokenStore"]
