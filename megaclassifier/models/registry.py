"""Published models, where they are downloaded to, and model names versus paths.

The reference documentation lists two classifiers, hosted on lila.science:

==================== ================================================ ==========
name                 files                                            image size
==================== ================================================ ==========
megaclassifier-v0.1  ``megaclassifier_v0.1_efficientnet-b3_compiled.pt`` 300
                     (TorchScript), ``megaclassifier_v0.1_efficientnet-b3.pt``
                     (checkpoint), ``megaclassifier_v0.1_index_to_name.json``,
                     ``idfg_to_megaclassifier_labels.json``
idfg-classifier      ``idfg_classifier_ckpt_14_compiled.pt`` (TorchScript),  300
                     ``label_index.json``
speciesnet-v4.0.2a   a SpeciesNet release folder (``info.json``, the      480
                     classifier, its labels, taxonomy and geofence), from
                     the Hugging Face mirror ``Addax-Data-Science/SPECIESNET-v4-0-2-A``
==================== ================================================ ==========

``megaclassifier download NAME`` stores them in ``<cache>/models/NAME/``,
where ``<cache>`` is ``$MEGACLASSIFIER_CACHE_DIR``, else the platform's user
cache folder (``$XDG_CACHE_HOME/megaclassifier`` or ``~/.cache/megaclassifier``
on Linux). Commands that take a model accept such a name in place of a path.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from megaclassifier.errors import ModelError
from megaclassifier.models.speciesnet import is_release

logger = logging.getLogger(__name__)

#: Where the files are published; ``MEGACLASSIFIER_DOWNLOAD_BASE_URL`` overrides it.
DEFAULT_BASE_URL = "https://lila.science/public/models/"


@dataclass(frozen=True)
class ModelFile:
    """One published file of a model.

    Attributes:
        url_path: path below the base URL.
        role: ``model`` (TorchScript), ``checkpoint``, ``categories`` (index-to-name JSON), ``mapping``,
            or, for a SpeciesNet release, ``release`` (its ``info.json``) and ``release-file`` (the files it names).
    """

    url_path: str
    role: str

    @property
    def filename(self) -> str:
        """The local file name."""
        return self.url_path.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class KnownModel:
    """A published classifier that ``download`` fetches and commands accept by name.

    Attributes:
        base_url: where its files are, when not below :data:`DEFAULT_BASE_URL`.
    """

    name: str
    description: str
    files: tuple[ModelFile, ...]
    image_size: int
    base_url: str | None = None

    def file(self, role: str) -> ModelFile | None:
        """The file with this role, or None."""
        return next((f for f in self.files if f.role == role), None)


KNOWN_MODELS: dict[str, KnownModel] = {
    "megaclassifier-v0.1": KnownModel(
        name="megaclassifier-v0.1",
        description="MegaClassifier v0.1, EfficientNet-B3, 169 classes",
        files=(
            ModelFile("megaclassifier/v0.1/megaclassifier_v0.1_efficientnet-b3_compiled.pt", "model"),
            ModelFile("megaclassifier/v0.1/megaclassifier_v0.1_efficientnet-b3.pt", "checkpoint"),
            ModelFile("megaclassifier/v0.1/megaclassifier_v0.1_index_to_name.json", "categories"),
            ModelFile("megaclassifier/v0.1/idfg_to_megaclassifier_labels.json", "mapping"),
        ),
        image_size=300,
    ),
    "idfg-classifier": KnownModel(
        name="idfg-classifier",
        description="Idaho Fish and Game classifier (2020-09-05, checkpoint 14)",
        files=(
            ModelFile("idfg_classifier/idfg_classifier_20200905_042558/idfg_classifier_ckpt_14_compiled.pt", "model"),
            ModelFile("idfg_classifier/idfg_classifier_20200905_042558/label_index.json", "categories"),
        ),
        image_size=300,
    ),
    "speciesnet-v4.0.2a": KnownModel(
        name="speciesnet-v4.0.2a",
        description="SpeciesNet v4.0.2a classifier (always_crop, EfficientNet V2 M); loading it runs pickled code",
        files=(
            ModelFile("info.json", "release"),
            ModelFile("always_crop_99710272_22x8_v12_epoch_00148.pt", "release-file"),
            ModelFile("always_crop_99710272_22x8_v12_epoch_00148.labels.20251208.txt", "release-file"),
            ModelFile("taxonomy_release.20251208.txt", "release-file"),
            ModelFile("geofence_release.20251208.json", "release-file"),
        ),
        image_size=480,
        base_url="https://huggingface.co/Addax-Data-Science/SPECIESNET-v4-0-2-A/resolve/main/",
    ),
}


def user_cache_dir() -> Path:
    """The user cache folder of this package (not created here)."""
    override = os.environ.get("MEGACLASSIFIER_CACHE_DIR")
    if override:
        return Path(override).expanduser()
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
        return Path(base) / "megaclassifier" / "Cache"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "megaclassifier"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "megaclassifier"


def default_model_dir(name: str) -> Path:
    """Where ``download NAME`` puts a model's files by default."""
    return user_cache_dir() / "models" / name


def known_model(model: str | Path) -> KnownModel | None:
    """The published model called ``model``, or None when ``model`` is not such a name.

    An existing file or folder of that name wins over the published model.
    """
    if isinstance(model, str) and model in KNOWN_MODELS and not Path(model).exists():
        return KNOWN_MODELS[model]
    return None


def resolve_model(model: str | Path, *, role: str = "model") -> Path:
    """Return the file to load for ``model``: a path, or a downloaded published model's file.

    A SpeciesNet release (a folder with ``info.json``, or a published release's name)
    resolves to its folder.

    Args:
        model: a model file or release folder, or a name from :data:`KNOWN_MODELS`.
        role: for a name, which file: ``model`` (TorchScript), ``checkpoint`` or ``categories``;
            ``checkpoint`` falls back to the TorchScript model when none is published.

    Raises:
        ModelError: no such file, or the named model is not downloaded.
    """
    known = known_model(model)
    if known is None:
        path = Path(model)
        if not path.exists():
            names = ", ".join(KNOWN_MODELS)
            raise ModelError(f"{model}: no such model file (or use a published model name: {names})")
        if path.is_dir() and not is_release(path):
            raise ModelError(
                f"{model}: is a folder without info.json; expected a TorchScript model, a checkpoint file "
                "or a SpeciesNet release folder"
            )
        return path
    if known.file("release") is not None:  # a SpeciesNet release: the folder is the model
        folder = default_model_dir(known.name)
        if not is_release(folder):
            raise ModelError(
                f"{known.name}: not downloaded ({folder / 'info.json'} is missing); "
                f"run `megaclassifier download {known.name}` first"
            )
        return folder
    wanted = known.file(role) or (known.file("model") if role == "checkpoint" else None)
    if wanted is None:
        raise ModelError(f"{known.name}: has no {role} file")
    path = default_model_dir(known.name) / wanted.filename
    if not path.is_file():
        raise ModelError(
            f"{known.name}: not downloaded ({path} is missing); run `megaclassifier download {known.name}` first"
        )
    return path
