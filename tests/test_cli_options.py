"""An option that two commands share is the same option: one type, one default, one help text.

The shared options come from ``megaclassifier.cli.options`` and its sibling option modules; this test keeps
new commands from re-declaring them with a drifted default or help. Where the
reference scripts gave one flag two meanings, the exception is listed with why.
"""

from __future__ import annotations

from collections import defaultdict

import click
import pytest

from megaclassifier.cli import cli

#: long flag -> groups of commands within which it is one option; the reference scripts, or the work, give
#: it another meaning (or default) in each group. Commands not named share the flag's first group.
GROUPS: dict[str, list[set[str]]] = {
    # crop_detections.py: the detection-confidence threshold (default 0); report and export: which detections
    # a reviewer sees (default 0.15); merge_classification_detection_output.py: the classification threshold
    # (run calls that one --classification-threshold).
    # rollup: the score below which a detection moves up the taxonomy.
    # evaluate and learn-mapping: which detections count, as for report and export.
    "--threshold": [{"crop", "run"}, {"report", "export", "evaluate", "learn-mapping"}, {"merge"}, {"rollup"}],
    # run: merge's threshold for writing a class (0.1); evaluate, learn-mapping: the score under which a
    # detection's top class counts as unsure (MegaDetector's analyze_classification_results, 0.6).
    "--classification-threshold": [{"run"}, {"evaluate", "learn-mapping"}],
    # aggregate writes the target probabilities there; run the classifier's own probabilities.
    "--output-csv": [{"run"}, {"aggregate"}],
    # classify and features read small crop files, run decodes whole photos, report makes thumbnails:
    # other work, other defaults.
    # map-categories and learn-mapping write a target mapping; train-head a model file.
    "--output": [{"map-categories", "learn-mapping"}, {"train-head"}],
    "--num-workers": [{"classify", "features"}, {"run"}, {"report", "evaluate"}],
    # whose rules: rollup's roll-up (SpeciesNet's, MegaDetector's, ours) and restrict's (MegaDetector's, ours).
    "--semantics": [{"rollup"}, {"restrict"}],
}


def _describe(option: click.Option) -> tuple[object, ...]:
    kind = option.type
    detail = (
        getattr(kind, "choices", None),
        getattr(kind, "min", None),
        getattr(kind, "max", None),
        getattr(kind, "exists", None),
        getattr(kind, "file_okay", None),
        getattr(kind, "dir_okay", None),
    )
    return type(kind).__name__, detail, option.default, option.help, option.is_flag, option.multiple


def _options_by_flag() -> dict[str, dict[str, click.Option]]:
    ctx = click.Context(cli)
    found: dict[str, dict[str, click.Option]] = defaultdict(dict)
    for name in cli.list_commands(ctx):
        command = cli.get_command(ctx, name)
        assert command is not None
        for param in command.params:
            if isinstance(param, click.Option):
                for flag in param.opts:
                    if flag.startswith("--") and flag != "--help":
                        found[flag][name] = param
    return found


SHARED = {flag: commands for flag, commands in _options_by_flag().items() if len(commands) > 1}


def test_the_shared_options_are_found() -> None:
    # the options this test exists for: if one disappears from a command, the list below must be looked at
    for flag in (
        "--images-dir",
        "--square-crops",
        "--batch-size",
        "--device",
        "--classifier-categories",
        "--output-json",
        "--classifier-name",
        "--typical-confidence-threshold",
        "--target-mapping",
        "--logdir",
        "--image-size",
        "--precision",
        "--backend",
        "--arch",
    ):
        assert flag in SHARED, flag


def _groups(flag: str) -> list[dict[str, click.Option]]:
    named = GROUPS.get(flag, [set()])
    listed = set().union(*named)
    groups = [{n: o for n, o in SHARED[flag].items() if n in group} for group in named]
    groups[0].update({n: o for n, o in SHARED[flag].items() if n not in listed})
    return [group for group in groups if group]


@pytest.mark.parametrize("flag", sorted(SHARED))
def test_an_option_in_two_commands_is_the_same_option(flag: str) -> None:
    for group in _groups(flag):
        described = {name: _describe(opt) for name, opt in group.items()}
        first_name, first = next(iter(described.items()))
        for name, description in described.items():
            assert description == first, f"{flag}: {name} differs from {first_name}"


def test_every_named_group_exists() -> None:
    for flag, groups in GROUPS.items():
        for group in groups:
            assert group <= set(SHARED[flag]), (flag, group - set(SHARED[flag]))


def test_defaults_come_from_constants() -> None:
    from megaclassifier.constants import DEFAULT_BATCH_SIZE, DEFAULT_MERGE_THRESHOLD

    assert {opt.default for opt in SHARED["--batch-size"].values()} == {DEFAULT_BATCH_SIZE}
    assert SHARED["--threshold"]["merge"].default == DEFAULT_MERGE_THRESHOLD


def test_short_flags_do_not_clash_with_the_group() -> None:
    group_short = {flag for param in cli.params for flag in getattr(param, "opts", []) if not flag.startswith("--")}
    ctx = click.Context(cli)
    for name in cli.list_commands(ctx):
        command = cli.get_command(ctx, name)
        assert command is not None
        short = {flag for param in command.params for flag in getattr(param, "opts", []) if not flag.startswith("--")}
        assert not (short & group_short - {"-h"}), name


def test_run_takes_no_short_flag_that_means_something_else_in_crop_or_classify() -> None:
    ctx = click.Context(cli)
    flags = {}
    for name in ("crop", "classify", "merge", "run"):
        command = cli.get_command(ctx, name)
        assert command is not None
        flags[name] = {
            short: next(o for o in param.opts if o.startswith("--"))
            for param in command.params
            if isinstance(param, click.Option)
            for short in param.opts
            if not short.startswith("--")
        }
    for short, long in flags["run"].items():
        for other in ("crop", "classify"):
            if short in flags[other]:
                assert flags[other][short] == long, f"run {short} is {long}, {other} {short} is {flags[other][short]}"
