"""``emergent models``: offline model preparation."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True)


@app.command()
def prepare() -> None:
    """Export the packaged MiniLM to ONNX once, so every later process loads it in ~0.2 s."""
    from emergent.providers.embeddings import MiniLMEmbedder, minilm_available

    if not minilm_available():
        typer.echo("minilm extra not installed: the hashing embedder will be used (pip install 'emergent[minilm]')")
        return
    emb = MiniLMEmbedder()
    emb.embed(["warm-up"])
    typer.echo(f"minilm ready: {MiniLMEmbedder.onnx_path(None)}")
