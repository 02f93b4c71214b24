"""Write ``docs/commands.md``, the commands reference, from the command tree's own ``--help``.

    python -m megaclassifier.cli._docs docs/commands.md     # regenerate (make docs-ref)
    python -m megaclassifier.cli._docs                      # print it

The page is the ``--help`` of ``megaclassifier`` and of every subcommand, in the
order ``megaclassifier --help`` lists them, each at a fixed width of 100
columns, so the file is the same on every machine. ``tests/test_docs.py`` fails
when the committed page differs from what this prints.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from megaclassifier.cli import cli

#: Columns of the help text in the page (the CLI's own max_content_width).
WIDTH = 100

REGENERATE = "python -m megaclassifier.cli._docs docs/commands.md"

_HEADER = f"""# Commands reference

<!-- Generated from `megaclassifier COMMAND --help`; do not edit by hand.
     Regenerate with `{REGENERATE}` (or `make docs-ref`). -->

Every command's `--help`, as the installed version prints it. `megaclassifier
COMMAND -h` shows the same in a terminal; `python -m megaclassifier` is the same
as `megaclassifier`.
"""


def _help(command: click.Command, name: str, parent: click.Context) -> str:
    ctx = click.Context(command, info_name=name, parent=parent)
    return command.get_help(ctx)


def commands_reference() -> str:
    """The Markdown of the commands reference."""
    settings = {"terminal_width": WIDTH, "max_content_width": WIDTH, "help_option_names": ["-h", "--help"]}
    root = click.Context(cli, info_name="megaclassifier", **settings)  # type: ignore[arg-type]
    parts = [_HEADER, "## `megaclassifier`\n", "```text\n" + cli.get_help(root) + "\n```\n"]
    for name in cli.list_commands(root):
        command = cli.get_command(root, name)
        if command is None or command.hidden:
            continue
        summary = command.get_short_help_str(limit=WIDTH)
        parts.append(f"## `{name}`\n\n{summary}\n\n```text\n{_help(command, name, root)}\n```\n")
    return "\n".join(parts)


def main(argv: list[str]) -> None:
    """Print the page, or write it to the one path given."""
    text = commands_reference()
    if not argv:
        sys.stdout.write(text)
        return
    Path(argv[0]).write_text(text, encoding="utf-8", newline="\n")


if __name__ == "__main__":
    main(sys.argv[1:])
