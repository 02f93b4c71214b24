"""The documentation cannot drift from the code: README.md and docs/ against the commands.

- ``docs/commands.md`` is what ``python -m megaclassifier.cli._docs`` prints now;
- every ``$ megaclassifier`` example of README.md and docs/ runs on the bundled demo
  data and prints the lines shown under it (``...`` stands for what changes);
- README's cmd.exe examples run through a cmd.exe-style parser and give the files
  its POSIX examples give;
- ``mkdocs build --strict`` builds the site; the help texts show every default.

``pytest -k docs`` runs them alone.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import shutil
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from megaclassifier.cli import cli
from megaclassifier.cli._docs import REGENERATE, commands_reference

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
DOCS = REPO / "docs"
PAGES = [README, *sorted(DOCS.glob("*.md"))]

_FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.M | re.S)


def _blocks(page: Path, language: str) -> list[str]:
    return [body for lang, body in _FENCE.findall(page.read_text(encoding="utf-8")) if lang == language]


def console_examples(page: Path) -> list[tuple[str, list[str]]]:
    """``(command, expected lines)`` of each ``$ `` line of the page's ``console`` blocks, in order."""
    examples: list[tuple[str, list[str]]] = []
    for body in _blocks(page, "console"):
        lines = body.splitlines()
        i = 0
        while i < len(lines):
            line = lines[i]
            i += 1
            if not line.startswith("$ "):
                examples[-1][1].append(line)
                continue
            command = line[2:]
            while command.endswith("\\"):
                command = command[:-1] + " " + lines[i].strip()
                i += 1
            examples.append((command, []))
    return examples


def cmd_exe_split(line: str) -> list[str]:
    """Split a cmd.exe command line as cmd.exe and a Windows program's C runtime do.

    cmd.exe removes each ``^`` escape outside quotes; the program splits at
    white space outside double quotes (``"a b"`` is one argument; ``\\`` is an
    ordinary character unless backslashes precede a quote: then each pair is one
    backslash and an odd one makes the quote literal).
    """
    return _argv_split(_cmd_unescape(line))


def _cmd_unescape(line: str) -> str:
    parts = re.split(r'("[^"]*"?)', line)  # quoted stretches keep their ^
    return "".join(p if p.startswith('"') else re.sub(r"\^(.)", r"\1", p) for p in parts)


def _argv_split(text: str) -> list[str]:
    args: list[str] = []
    current: str | None = None
    quoted = False
    for match in re.finditer(r'(\\*)"|[ \t]+|\\+|[^\\" \t]+', text):
        token = match.group(0)
        if token[0] in " \t" and not quoted:
            if current is not None:
                args.append(current)
            current = None
        elif token.endswith('"'):
            slashes = len(match.group(1))
            current = (current or "") + "\\" * (slashes // 2) + ('"' if slashes % 2 else "")
            quoted = quoted if slashes % 2 else not quoted
        else:
            current = (current or "") + token
    if current is not None:
        args.append(current)
    return args


def cmd_exe_examples(page: Path) -> list[list[str]]:
    """Each command of the page's ``bat`` blocks that starts with ``megaclassifier``, as its argv."""
    commands = []
    for body in _blocks(page, "bat"):
        joined = re.sub(r"\^\n\s*", " ", body)  # a ^ at the end of a line continues it
        for line in joined.splitlines():
            if line.startswith("megaclassifier "):
                commands.append(cmd_exe_split(line))
    return commands


def _expected(line: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in line.split("...")))


@pytest.fixture(scope="module")
def standin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo's seeded stand-in model, as ``make demo`` leaves it in ``demo-output/standin-model``."""
    spec = importlib.util.spec_from_file_location("run_demo", REPO / "demo" / "run_demo.py")
    assert spec is not None and spec.loader is not None
    run_demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(run_demo)
    folder = tmp_path_factory.mktemp("demo-output") / "standin-model"
    run_demo.build_standin(folder)
    return folder


def _demo_folder(tmp_path: Path, standin: Path) -> Path:
    (tmp_path / "demo").mkdir()
    shutil.copytree(REPO / "demo" / "data", tmp_path / "demo" / "data")
    (tmp_path / "demo-output").mkdir()
    (tmp_path / "demo-output" / "standin-model").symlink_to(standin, target_is_directory=True)
    return tmp_path


def _invoke(args: list[str]) -> str:
    assert args[0] == "megaclassifier", args
    result = CliRunner().invoke(cli, args[1:], catch_exceptions=False)
    assert result.exit_code == 0, f"{shlex.join(args)} exited {result.exit_code}:\n{result.output}"
    return result.output


def _without_time(path: Path) -> dict[str, object]:
    data = json.loads(path.read_text(encoding="utf-8"))
    data["info"].pop("classification_completion_time", None)
    return data


RUNNABLE = [page for page in PAGES if console_examples(page)]


def test_docs_examples_are_found() -> None:
    # the pages whose examples run: one disappearing means a block lost its `console` marker
    assert {"README.md", "pipeline.md", "reports.md", "smoothing.md"} <= {p.name for p in RUNNABLE}
    assert len(console_examples(README)) == 5
    assert len(cmd_exe_examples(README)) == 5


@pytest.mark.parametrize("page", RUNNABLE, ids=[p.name for p in RUNNABLE])
def test_docs_examples_print_what_the_docs_state(
    page: Path, standin: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(_demo_folder(tmp_path, standin))
    for command, expected in console_examples(page):
        output = _invoke(shlex.split(command))
        printed = re.split(r"[\r\n]+", output)
        for line in expected:
            pattern = _expected(line)
            assert any(pattern.fullmatch(p) for p in printed), f"{page.name}: `{command}` did not print\n{line}\n"
            f"it printed:\n{output}"


def test_docs_readme_cmd_exe_examples_give_the_posix_examples_files(
    standin: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    posix, windows = tmp_path / "posix", tmp_path / "windows"
    posix.mkdir()
    windows.mkdir()
    monkeypatch.chdir(_demo_folder(posix, standin))
    for command, _ in console_examples(README):
        _invoke(shlex.split(command))
    monkeypatch.chdir(_demo_folder(windows, standin))
    for argv in cmd_exe_examples(README):
        # Windows reads "\" in a path as "/"; here the folder names are made of the same parts
        _invoke([a.replace("\\", os.sep) for a in argv])
    for name in ("md_classified.json", "md_run.json"):
        assert _without_time(windows / name) == _without_time(posix / name), name
    assert _without_time(windows / "md_run.json") == _without_time(windows / "md_classified.json")


def test_docs_cmd_exe_split() -> None:
    assert cmd_exe_split(r'megaclassifier crop "D:\my photos\md.json" crops ^& --x') == [
        "megaclassifier",
        "crop",
        r"D:\my photos\md.json",
        "crops",
        "&",
        "--x",
    ]
    assert cmd_exe_split(r'a \\server\share b\"c "d\\"') == ["a", r"\\server\share", 'b"c', "d\\"]


def test_docs_commands_reference_is_current() -> None:
    committed = (DOCS / "commands.md").read_text(encoding="utf-8")
    assert committed == commands_reference(), f"docs/commands.md is stale: run `{REGENERATE}` (make docs-ref)"


def _options(command: click.Command, parent: click.Context) -> list[tuple[str, str]]:
    ctx = click.Context(command, info_name=command.name, parent=parent)
    records = [p.get_help_record(ctx) for p in command.params if isinstance(p, click.Option)]
    return [r for r in records if r is not None and r[0] != "-h, --help"]


def test_docs_help_shows_every_default_and_an_example() -> None:
    root = click.Context(cli, info_name="megaclassifier")
    for name in cli.list_commands(root):
        command = cli.get_command(root, name)
        assert command is not None
        assert "Example" in (command.help or "") and f"megaclassifier {name}" in (command.help or ""), name
        for flags, text in _options(command, root):
            assert "None" not in text, f"{name} {flags}: {text}"
            assert "default" in text.lower() or "[required]" in text or "required]" in text, f"{name} {flags}: {text}"


def test_docs_readme_is_short_and_lists_every_command() -> None:
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 300
    root = click.Context(cli, info_name="megaclassifier")
    for name in cli.list_commands(root):
        assert f"\n| `{name}` | " in text, name
        assert f"\n## `{name}`\n" in (DOCS / "commands.md").read_text(encoding="utf-8"), name


def test_docs_mkdocs_build_strict(tmp_path: Path) -> None:
    pytest.importorskip("mkdocs", reason="mkdocs is in the test extra")
    import subprocess

    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "site" / "commands" / "index.html").is_file()
    assert "megaclassifier run" in (tmp_path / "site" / "commands" / "index.html").read_text(encoding="utf-8")
