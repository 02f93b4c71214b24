"""``download``: fetch a published model's files (see :mod:`megaclassifier.models.registry`).

Each file is fetched into ``<file>.part`` beside its destination; an
interrupted download resumes from there (HTTP ``Range``) the next time, and
the file gets its final name only once complete. Files already present are
kept unless ``force``. Afterwards every model file is loaded and run once,
and its number of outputs is checked against the index-to-name JSON.

A server that does not answer within ``timeout`` seconds (to connect, or
for the next data), a dropped connection and HTTP 408/429/5xx are transient:
the file is tried again a few times with exponential backoff, resuming from
its part file (:mod:`megaclassifier.netio`), before the download fails.

The URL base is ``https://lila.science/public/models/``; the ``base_url``
argument or ``MEGACLASSIFIER_DOWNLOAD_BASE_URL`` replaces it (a mirror, or a
test server).
"""

from __future__ import annotations

import contextlib
import http.client
import logging
import os
import re
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

from megaclassifier import __version__
from megaclassifier.constants import DEFAULT_TIMEOUT, FETCH_RETRIES
from megaclassifier.errors import DownloadError, MegaClassifierError
from megaclassifier.formats.json_input import read_json
from megaclassifier.models.registry import DEFAULT_BASE_URL, KNOWN_MODELS, KnownModel, default_model_dir

logger = logging.getLogger(__name__)


class _TransientDownloadError(DownloadError):
    """A failure that another try may not have (timeout, dropped connection, HTTP 5xx)."""


_CHUNK = 1 << 20
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


@dataclass
class DownloadSummary:
    """What a ``download`` did.

    Attributes:
        name: the model's name.
        output_dir: where its files are.
        files: every file of the model, in the published order.
        fetched: how many were fetched now (the rest were already there).
        bytes_fetched: bytes transferred now.
        num_classes: the model's number of outputs, when checked.
    """

    name: str
    output_dir: Path
    files: list[Path] = field(default_factory=list)
    fetched: int = 0
    bytes_fetched: int = 0
    num_classes: int | None = None


def base_url_from_env(base_url: str | None = None, default: str | None = None) -> str:
    """The URL base to download from, ending in ``/`` (``default``: the model's own, else lila.science)."""
    base = base_url or os.environ.get("MEGACLASSIFIER_DOWNLOAD_BASE_URL") or default or DEFAULT_BASE_URL
    return base if base.endswith("/") else base + "/"


def download_model(
    name: str,
    *,
    output_dir: str | Path | None = None,
    base_url: str | None = None,
    force: bool = False,
    check: bool = True,
    timeout: float = DEFAULT_TIMEOUT,
    retries: int = FETCH_RETRIES,
    progress: bool = False,
) -> DownloadSummary:
    """Download the files of a published model and check that it loads.

    Args:
        name: a key of :data:`~megaclassifier.models.registry.KNOWN_MODELS`.
        output_dir: where to put the files; default ``<user cache>/models/NAME``,
            where commands look for a model given by name.
        base_url: URL base replacing ``https://lila.science/public/models/``.
        force: fetch again files that are already there.
        check: load each model file once and compare its outputs with the class names.
        timeout: seconds the server may take to connect or to send more data.
        retries: tries after a transient failure of a file, each resuming it.
        progress: show a progress bar per file on stderr.

    Raises:
        MegaClassifierError: unknown name.
        DownloadError: a file cannot be fetched, or does not load (it is then deleted).
    """
    known = KNOWN_MODELS.get(name)
    if known is None:
        raise MegaClassifierError(f"unknown model {name!r}; published models: {', '.join(KNOWN_MODELS)}")
    out = Path(output_dir) if output_dir is not None else default_model_dir(name)
    out.mkdir(parents=True, exist_ok=True)
    base = base_url_from_env(base_url, known.base_url)
    summary = DownloadSummary(name, out)
    for entry in known.files:
        dest = out / entry.filename
        summary.files.append(dest)
        if dest.is_file() and not force:
            logger.info("%s: already there", dest)
            continue
        summary.bytes_fetched += fetch(base + entry.url_path, dest, progress=progress, timeout=timeout, retries=retries)
        summary.fetched += 1
    if check:
        release = known.file("release") is not None
        summary.num_classes = check_release_files(out) if release else check_model_files(known, out)
    return summary


def fetch(
    url: str, dest: Path, *, progress: bool = False, timeout: float = DEFAULT_TIMEOUT, retries: int = FETCH_RETRIES
) -> int:
    """Download ``url`` to ``dest`` through ``dest.part``, resuming it; return the bytes transferred.

    Transient failures are retried with backoff, each try resuming the part file.

    Raises:
        DownloadError: HTTP error, network error, or a short transfer (the part file is kept).
    """
    from megaclassifier.netio import with_retries

    return with_retries(
        lambda: _fetch_once(url, dest, progress=progress, timeout=timeout),
        what=url,
        retries=retries,
        transient=lambda e: isinstance(e, _TransientDownloadError),
    )


def _fetch_once(url: str, dest: Path, *, progress: bool, timeout: float) -> int:
    """One try of :func:`fetch`; transient failures raise :class:`_TransientDownloadError`."""
    from tqdm import tqdm

    from megaclassifier.netio import describe_error, is_transient

    part = dest.with_name(dest.name + ".part")
    offset = part.stat().st_size if part.is_file() else 0
    headers = {"User-Agent": f"megaclassifier/{__version__}"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and offset:  # the part file is not a prefix of this file: start again
            part.unlink()
            return _fetch_once(url, dest, progress=progress, timeout=timeout)
        error = _TransientDownloadError if is_transient(e) else DownloadError
        raise error(f"{url}: HTTP {e.code} {e.reason}") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
        error = _TransientDownloadError if is_transient(e) else DownloadError
        raise error(f"{url}: {describe_error(e)}; check the connection and run download again") from None
    transferred = 0
    with response:
        total: int | None
        if offset and response.status == 206:
            match = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
            if match is None or int(match[1]) != offset:
                raise DownloadError(f"{url}: the server answered the resume request with a wrong range")
            total = int(match[3]) if match[3] != "*" else None
            mode = "ab"
            logger.info("%s: resuming at %d bytes", dest.name, offset)
        else:
            offset = 0
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            mode = "wb"
        bar = tqdm(
            total=total,
            initial=offset,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=dest.name,
            disable=not progress,
            dynamic_ncols=True,
        )
        try:
            with bar, open(part, mode) as f:
                while chunk := response.read(_CHUNK):
                    f.write(chunk)
                    transferred += len(chunk)
                    bar.update(len(chunk))
        except (OSError, http.client.HTTPException) as e:
            raise _TransientDownloadError(
                f"{url}: interrupted after {offset + transferred} bytes ({describe_error(e)}); "
                "run download again to resume"
            ) from None
    size = part.stat().st_size
    if total is not None and size != total:
        raise _TransientDownloadError(f"{url}: got {size} of {total} bytes; run download again to resume")
    os.replace(part, dest)
    logger.info("%s: %d bytes", dest, size)
    return transferred


def check_model_files(known: KnownModel, folder: Path) -> int | None:
    """Load every model file of ``known`` in ``folder`` and check it against the class names.

    Returns:
        The number of classes.

    Raises:
        DownloadError: a file does not load or does not fit; the bad file is deleted.
    """
    from megaclassifier.engines.torch_engine import run_probe
    from megaclassifier.formats.probabilities import load_label_index
    from megaclassifier.models.loading import load_model

    names: list[str] | None = None
    for entry in known.files:
        path = folder / entry.filename
        try:
            if entry.role == "categories":
                names = load_label_index(path)
            elif entry.role == "mapping":
                mapping = read_json(path)
                if not isinstance(mapping, dict) or not all(isinstance(v, list) for v in mapping.values()):
                    raise MegaClassifierError("not a JSON object of target name to list of classes")
        except (MegaClassifierError, OSError, ValueError) as e:
            _reject(path, e)
    width = None
    for entry in known.files:
        if entry.role not in ("model", "checkpoint"):
            continue
        path = folder / entry.filename
        try:
            loaded = load_model(path)
            width = int(run_probe(loaded.module, path, known.image_size).shape[1])
        except MegaClassifierError as e:
            _reject(path, e)
        if names is not None and width != len(names):
            _reject(path, f"the model has {width} outputs but the class names file has {len(names)}")
        logger.info("%s loads: %d classes", path.name, width)
    return width


def check_release_files(folder: Path) -> int:
    """Load a downloaded SpeciesNet release and check its width against its labels; a bad file is deleted."""
    from megaclassifier.engines.torch_engine import run_probe
    from megaclassifier.models.loading import load_model
    from megaclassifier.models.speciesnet import read_labels, read_release

    release = read_release(folder)
    labels = read_labels(release.classifier_labels)
    try:
        loaded = load_model(folder)
        width = int(run_probe(loaded.module, release.classifier, 480, loaded.preprocessing).shape[1])
    except MegaClassifierError as e:
        _reject(release.classifier, e)
    if width != len(labels):
        _reject(
            release.classifier, f"the model has {width} outputs but {release.classifier_labels.name} has {len(labels)}"
        )
    logger.info("%s loads: %d classes", release.classifier.name, width)
    return width


def _reject(path: Path, problem: object) -> NoReturn:
    with contextlib.suppress(OSError):
        path.unlink()
    text = str(problem)
    prefix = f"{path}: "
    text = text[len(prefix) :] if text.startswith(prefix) else text
    raise DownloadError(f"{path}: downloaded, but unusable ({text}); deleted it, run download again")
