"""A model string resolved once: the file (or release folder), its labels, profile and identity.

``MODEL`` on the command line is a model file, a SpeciesNet release folder or a published
model's name. :func:`resolve` turns it into one :class:`ResolvedModel`, once per command,
as timm resolves a model's pretrained source once; ``classify``, ``features``, ``run``
and ``run --ray``'s actors take that object instead of the string::

    model = resolve("speciesnet-v4.0.2a")
    model.path            # the release folder in the cache
    model.release         # its info.json, read once (SpeciesNetRelease), or None
    model.preprocessing   # the input the model wants (SpeciesNet's, else the reference's)
    model.class_names(None), model.descriptions, model.identity   # names, labels, SHA-256

The identity is the model's content: the SHA-256 of the file, or of a release folder's
``info.json`` and the files it names (so a copy elsewhere, or a published name, is the
same model; an edited labels file is another). Nothing here loads weights or imports torch.
"""

from __future__ import annotations

import functools
import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

from megaclassifier.formats.hashing import file_sha256
from megaclassifier.formats.probabilities import load_label_index
from megaclassifier.models.registry import KnownModel, default_model_dir, known_model, resolve_model
from megaclassifier.models.speciesnet import SpeciesNetRelease, common_name, is_release, read_labels, read_release
from megaclassifier.preprocess import REFERENCE, Preprocessing

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ResolvedModel:
    """One model, found: what the commands and the engines need to know before loading it.

    Attributes:
        source: the string the user gave (a path or a published name).
        path: the file to load (``role``'s file of a published model), or a release folder.
        role: which file of a published model: ``model`` (TorchScript) or ``checkpoint``.
        known: the published model ``source`` names, or None.
        release: the SpeciesNet release (its ``info.json`` read once), or None.
    """

    source: str
    path: Path
    role: str
    known: KnownModel | None
    release: SpeciesNetRelease | None

    @property
    def preprocessing(self) -> Preprocessing:
        """The input the model wants: a release's own profile, else the reference's."""
        return self.release.preprocessing if self.release is not None else REFERENCE

    @functools.cached_property
    def labels(self) -> list[str] | None:
        """A SpeciesNet release's seven-token label of each class (read once), or None."""
        return read_labels(self.release.classifier_labels) if self.release is not None else None

    @property
    def descriptions(self) -> dict[str, str] | None:
        """``classification_category_descriptions`` of a release's classes (class ID -> label), or None."""
        return {str(i): label for i, label in enumerate(self.labels)} if self.labels is not None else None

    @property
    def default_name(self) -> str:
        """``info.classifier`` without ``--classifier-name``: ``speciesnet-<version>``, else the file's stem."""
        return self.release.name if self.release is not None else Path(self.source).name.rsplit(".", 1)[0]

    def class_names(self, classifier_categories: str | Path | None) -> list[str] | None:
        """The class names: from ``classifier_categories`` when given, else the model's own (None: unknown).

        Raises:
            InputFileError: the categories file is unusable.
            ModelError: a release's labels file is unusable.
        """
        if classifier_categories is not None:
            return load_label_index(classifier_categories)
        if self.labels is not None:
            return [common_name(label) for label in self.labels]
        if self.known is None and self.path.is_file():
            from megaclassifier.models.loading import embedded_class_names

            embedded = embedded_class_names(self.path)  # a train-head model carries its class names
            if embedded is not None:
                return embedded
        entry = self.known.file("categories") if self.known is not None else None
        if self.known is not None and entry is not None:
            path = default_model_dir(self.known.name) / entry.filename
            if path.is_file():
                logger.info("class names from %s", path)
                return load_label_index(path)
        return None

    @functools.cached_property
    def identity(self) -> str:
        """The SHA-256 of the model file, or of a release's ``info.json`` and every file it names."""
        if self.release is None:
            return file_sha256(self.path)
        release = self.release
        files = [self.path / "info.json", release.classifier, release.classifier_labels]
        files += [path for path in (release.taxonomy, release.geofence) if path.is_file()]
        digest = hashlib.sha256()
        for path in sorted(files, key=lambda p: p.name):
            digest.update(f"{path.name}\0{file_sha256(path)}\n".encode("utf-8", "surrogateescape"))
        return digest.hexdigest()


def names_release(model: str | Path | ResolvedModel) -> bool:
    """Whether ``model`` is a SpeciesNet release: a folder with ``info.json``, or a published release's name.

    The one test of it; it reads nothing (a damaged ``info.json`` is found by :func:`resolve`).
    """
    if isinstance(model, ResolvedModel):
        return model.release is not None
    known = known_model(model)
    if known is not None:
        return known.file("release") is not None
    return is_release(model)


def resolve(model: str | Path | ResolvedModel, *, role: str = "model") -> ResolvedModel:
    """Find ``model`` (a path or a published name) and read a release's ``info.json``; once per command.

    A :class:`ResolvedModel` is passed through (resolved again only for another ``role``).

    Raises:
        ModelError: no such file, a published model not downloaded, or an unusable ``info.json``.
    """
    if isinstance(model, ResolvedModel):
        if model.role == role or model.release is not None:
            return model
        model = model.source
    path = resolve_model(model, role=role)
    release = read_release(path) if names_release(model) else None
    return ResolvedModel(str(model), path, role, known_model(model), release)


def release_for(model: str | Path | ResolvedModel) -> SpeciesNetRelease | None:
    """The SpeciesNet release ``model`` names (a folder with ``info.json``, or a published release), or None.

    Raises:
        ModelError: a release that is not downloaded, or whose ``info.json`` is unusable.
    """
    return resolve(model).release


def categories_for(model: str | Path | ResolvedModel, classifier_categories: str | Path | None) -> list[str] | None:
    """The class names of ``model``: from ``classifier_categories`` when given, else the model's own.

    A model's own names are those a ``train-head`` model carries, a release's labels, or a published model's
    categories file (:meth:`~megaclassifier.models.resolved.ResolvedModel.class_names`).

    Returns:
        The names in index order, or None when neither is there (the caller names them ``0``..``N-1``).

    Raises:
        InputFileError: the categories file is unusable.
    """
    if classifier_categories is not None:
        return load_label_index(classifier_categories)
    return resolve(model).class_names(None)
