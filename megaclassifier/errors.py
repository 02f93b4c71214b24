"""The project's one error hierarchy.

Library code raises these; the CLI turns them into a one-line message and
exit code 1 in one place (:mod:`megaclassifier.cli`). Messages name the file,
say what is wrong and, where it helps, what to do.
"""

from __future__ import annotations

from pathlib import Path


class MegaClassifierError(Exception):
    """Base class of every error this package raises on purpose."""


class InputFileError(MegaClassifierError):
    """An input file is missing, unreadable or not in the expected format."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")


class ModelError(MegaClassifierError):
    """A model file cannot be loaded or does not fit its categories."""


class LabelSpecError(MegaClassifierError):
    """A label specification, taxonomy or mapping is inconsistent."""


class DownloadError(MegaClassifierError):
    """A model file could not be fetched."""


class OutputFileError(MegaClassifierError):
    """An output file or its folder cannot be written (read-only, full disk, a path under a file)."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")


#: The exit code when every image (or crop) of a run failed.
EXIT_NOTHING_WORKED = 3


class NothingWorkedError(MegaClassifierError):
    """Every image (or crop) failed: the command exits with :data:`EXIT_NOTHING_WORKED`, not 0.

    Attributes:
        exit_code: :data:`EXIT_NOTHING_WORKED`.
    """

    exit_code = EXIT_NOTHING_WORKED


def first_line(error: BaseException, limit: int = 200) -> str:
    """An error's text on one line, shortened: for messages that quote a library's error."""
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


class OutputLockedError(MegaClassifierError):
    """Another process is writing the same output (its lock is held); exit code 1."""
