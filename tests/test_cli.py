"""The command group: help, version, lazy imports, module entry point."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from megaclassifier import __version__
from megaclassifier.cli import cli


def _run_python(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout


def test_help_does_not_import_torch():
    code = (
        "import sys\n"
        "from megaclassifier.cli import cli\n"
        "for args in (['--help'], ['crop', '--help'], ['evaluate', '--help'], ['train-head', '--help']):\n"
        "    try:\n"
        "        cli.main(args, prog_name='megaclassifier')\n"
        "    except SystemExit:\n"
        "        pass\n"
        "heavy = ('torch', 'onnxruntime', 'openvino', 'torchvision', 'pandas', 'sklearn', 'matplotlib')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    assert _run_python(code).splitlines()[-1] == "[]"


def test_import_and_run_help_do_not_import_openvino():
    code = (
        "import sys\n"
        "import megaclassifier, megaclassifier.engines\n"
        "from megaclassifier.cli import cli\n"
        "for args in (['run', '--help'], ['classify', '--help']):\n"
        "    try:\n"
        "        cli.main(args, prog_name='megaclassifier')\n"
        "    except SystemExit:\n"
        "        pass\n"
        "print(sorted(m for m in ('openvino', 'onnxruntime', 'torch') if m in sys.modules))\n"
    )
    assert _run_python(code).splitlines()[-1] == "[]"


def test_version_and_short_help():
    runner = CliRunner()
    assert runner.invoke(cli, ["--version"]).output == f"megaclassifier, version {__version__}\n"
    result = runner.invoke(cli, ["-h"])
    assert result.exit_code == 0 and "Commands:" in result.output and "crop" in result.output


def test_python_dash_m():
    out = subprocess.run(
        [sys.executable, "-m", "megaclassifier", "--version"], capture_output=True, text=True, check=True
    ).stdout
    assert out == f"megaclassifier, version {__version__}\n"


def test_unknown_command_is_a_usage_error():
    result = CliRunner().invoke(cli, ["frobnicate"])
    assert result.exit_code == 2
    assert "No such command 'frobnicate'" in result.output


def test_every_command_is_documented_in_readme_and_has_an_example():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    ctx = cli.make_context("megaclassifier", ["--help"], resilient_parsing=True)
    names = cli.list_commands(ctx)
    assert names == [
        "crop",
        "classify",
        "features",
        "download",
        "csv-to-json",
        "map-categories",
        "aggregate",
        "merge",
        "run",
        "combine",
        "report",
        "export",
        "smooth",
        "restrict",
        "rollup",
        "evaluate",
        "learn-mapping",
        "train-head",
    ]
    for name in names:
        assert f"\n| `{name}` | " in readme, name  # the table of commands
        help_text = cli.get_command(ctx, name).help
        assert "Example" in help_text and f"megaclassifier {name}" in help_text, name
