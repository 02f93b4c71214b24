"""Helpers shared by the CLI modules: progress flag, summary output."""

from __future__ import annotations

import click


def show_progress(ctx: click.Context) -> bool:
    """Whether progress bars are wanted (off with ``-q``)."""
    return bool((ctx.find_root().obj or {}).get("progress", True))


def summary(message: str) -> None:
    """Print a command's one-line summary to stderr."""
    click.echo(message, err=True)
