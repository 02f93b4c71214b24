"""The click types and helpers every option module uses: input files, output files, folders,
and applying a group of options to a command.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    pass


F = TypeVar("F", bound=Callable[..., Any])


#: An existing input file, an output file, a folder.
INPUT_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


OUTPUT_FILE = click.Path(dir_okay=False, path_type=Path)


FOLDER = click.Path(file_okay=False, path_type=Path)


def apply_options(command: F, options: Sequence[Callable[[Any], Any]]) -> F:
    for option in reversed(options):
        command = option(command)
    return command
