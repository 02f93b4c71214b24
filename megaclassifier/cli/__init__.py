"""The ``megaclassifier`` command: click wiring only.

Each subcommand lives in its own module here, declares its options, calls one
library function by keyword and prints a one-line summary to stderr. Errors of
the library (:class:`~megaclassifier.errors.MegaClassifierError`) become a
one-line message and exit code 1 here, in one place; when every image failed
(:class:`~megaclassifier.errors.NothingWorkedError`) the code is 3, after
Ctrl-C 130 and after SIGTERM 143 (the temporary files are removed on the way out). Nothing heavy (torch,
onnxruntime) is imported until a command that needs it runs.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from typing import Any

import click

from megaclassifier import __version__
from megaclassifier.errors import MegaClassifierError, NothingWorkedError

#: Exit codes besides 0 (success), 1 (data or runtime error) and 2 (usage error); see docs/failure-behaviour.md.
EXIT_INTERRUPTED = 130  # Ctrl-C (SIGINT): 128 + 2
EXIT_TERMINATED = 143  # SIGTERM: 128 + 15

#: click's "no default given" (click 8.2 and later; None before)
_UNSET: Any = getattr(click.core, "UNSET", None)

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}

# subcommand name -> module under megaclassifier.cli, imported when first used
_COMMANDS = {
    "crop": "crop",
    "classify": "classify",
    "features": "features",
    "download": "download",
    "csv-to-json": "labels",
    "map-categories": "labels",
    "aggregate": "labels",
    "merge": "merge",
    "run": "run",
    "combine": "combine",
    "report": "report",
    "export": "export",
    "smooth": "smooth",
    "restrict": "smooth",
    "rollup": "smooth",
}


def one_line(message: str) -> str:
    """An error message on one line: line breaks (from a file name or a CSV cell, say) shown escaped."""
    return message.replace("\r", "\\r").replace("\n", "\\n")


class _Group(click.Group):
    """A group that loads subcommands lazily and turns library errors into one line."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name for name in _COMMANDS if self.get_command(ctx, name) is not None]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module_name = _COMMANDS.get(cmd_name)
        if module_name is None:
            return None
        import importlib

        try:
            module = importlib.import_module(f"megaclassifier.cli.{module_name}")
        except ModuleNotFoundError as e:
            if e.name == f"megaclassifier.cli.{module_name}":
                return None
            raise
        command = getattr(module, cmd_name.replace("-", "_"), None)
        if command is not None:
            show_every_default(command)
        return command

    def invoke(self, ctx: click.Context) -> Any:
        previous = _on_sigterm(_raise_terminated)
        try:
            return super().invoke(ctx)
        except NothingWorkedError as e:
            click.echo(f"Error: {one_line(str(e))}", err=True)
            sys.exit(e.exit_code)
        except MegaClassifierError as e:
            raise click.ClickException(one_line(str(e))) from None
        except KeyboardInterrupt:
            click.echo("Interrupted (Ctrl-C); temporary files removed.", err=True)
            sys.exit(EXIT_INTERRUPTED)
        except Terminated:
            click.echo("Terminated (SIGTERM); temporary files removed.", err=True)
            sys.exit(EXIT_TERMINATED)
        finally:
            _on_sigterm(previous)


def show_every_default(command: click.Command) -> None:
    """Make ``--help`` show each option's default: ``[default: (off)]`` for a flag, ``(none)`` for no value.

    Options that are required, or whose help already states their default (in
    words, as "the architecture's native size"), are left as they are. Calling
    it again changes nothing.
    """
    for param in command.params:
        if not isinstance(param, click.Option) or not param.expose_value or param.required or param.show_default:
            continue
        if "default" in (param.help or "").lower():
            continue
        if param.is_flag and not param.secondary_opts:
            param.show_default = "off"  # click writes it "(off)"
        elif param.default is None or param.default == () or param.default is _UNSET:
            param.show_default = "none"
        else:
            param.show_default = True


class Terminated(BaseException):
    """SIGTERM arrived: unwinds like Ctrl-C, so every temporary file is removed on the way out."""


def _raise_terminated(signum: int, frame: Any) -> None:
    raise Terminated


def _on_sigterm(handler: Any) -> Any:
    """Install ``handler`` for SIGTERM (in the main thread only); return the one it replaces."""
    if handler is None or threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, handler)


@click.group(cls=_Group, context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, "--version", prog_name="megaclassifier")
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors; no progress bars.")
@click.option("--verbose", is_flag=True, help="Debug messages.")
@click.pass_context
def cli(ctx: click.Context, quiet: bool, verbose: bool) -> None:
    """Classify the animals MegaDetector found in camera-trap images.

    \b
    The pipeline, as the MegaDetector classification scripts:
      megaclassifier crop md.json crops/ --images-dir photos/ --square-crops --threshold 0.15
      megaclassifier classify model.pt crops/ probs.csv.gz --detections-json md.json \\
          --classifier-categories index_to_name.json --image-size 300
      megaclassifier aggregate probs.csv.gz --target-mapping map.json \\
          --output-csv remapped.csv.gz --output-label-index remapped.json
      megaclassifier merge remapped.csv.gz remapped.json --output-json final.json \\
          --classifier-name megaclassifier_v0.1 --detection-json md.json
    or all of it in one pass with `megaclassifier run`.
    """
    level = logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s" if not verbose else "%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("megaclassifier")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
    ctx.obj = {"progress": not quiet}


show_every_default(cli)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="megaclassifier")
