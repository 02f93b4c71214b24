"""SpeciesNet releases: the folder, its classifier, labels, taxonomy and geofence.

A release (as published for PyPI ``speciesnet`` 5.x) is a folder with an
``info.json`` naming its files::

    {"version": "4.0.1a", "type": "always_crop",
     "classifier": "always_crop_..._epoch_00148.pt",
     "classifier_labels": "always_crop_..._epoch_00148.labels.txt",
     "detector": "md_v5a.0.0.pt", "taxonomy": "taxonomy_release.txt", "geofence": "geofence_release.json"}

* ``classifier``: a whole PyTorch module saved with ``torch.save`` (the published
  one is a ``torch.fx`` GraphModule converted from ONNX by ``onnx2torch``),
  taking NHWC float32 input in [0, 1] at 480 x 480.
* ``classifier_labels``: one label per output, seven ``;``-separated tokens
  ``guid;class;order;family;genus;species;common name`` (blank tokens for a
  higher taxon: ``...;mammalia;carnivora;canidae;;;canine family``).
* ``taxonomy``: the same kind of labels, for every taxon the ensemble may roll up to.
* ``geofence``: JSON, ``"class;order;family;genus;species"`` ->
  ``{"allow": {ISO3: [admin1, ...]}, "block": {ISO3: [admin1, ...]}}``.
* ``type``: ``always_crop`` (one crop per detection box) or ``full_image``
  (the whole image, top and bottom trimmed).

Security: the classifier is a pickle, and unpickling a whole module runs code
from the file. :func:`load_classifier` therefore loads only the file that the
folder's ``info.json`` names, inside the folder the user gave (or that
``download`` fetched), and nothing else. Load releases you trust.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from megaclassifier.errors import InputFileError, ModelError, first_line
from megaclassifier.formats.json_input import read_json
from megaclassifier.preprocess import Preprocessing

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

#: SpeciesNet's classifier input side.
SPECIESNET_IMAGE_SIZE = 480
ALWAYS_CROP = "always_crop"
FULL_IMAGE = "full_image"
RELEASE_TYPES = (ALWAYS_CROP, FULL_IMAGE)
INFO_FIELDS = ("version", "type", "classifier", "classifier_labels", "detector", "taxonomy", "geofence")

#: The preprocessing of each release type.
SPECIESNET_PREPROCESSING: dict[str, Preprocessing] = {
    ALWAYS_CROP: Preprocessing(
        "speciesnet", SPECIESNET_IMAGE_SIZE, crop_geometry="speciesnet", stretch=True, channels_last=True
    ),
    FULL_IMAGE: Preprocessing(
        "speciesnet", SPECIESNET_IMAGE_SIZE, crop_geometry="full_image", stretch=True, channels_last=True
    ),
}

#: The labels SpeciesNet's ensemble adds to (human, animal) or removes from (blank) its taxonomy map.
ANIMAL_LABEL = "1f689929-883d-4dae-958c-3d57ab5b6c16;;;;;;animal"
HUMAN_LABEL = "990ae9dd-7a59-4344-afcb-1b7b21368000;mammalia;primates;hominidae;homo;sapiens;human"
#: The labels with a meaning of their own in SpeciesNet's ensemble (its ``constants.Classification``).
BLANK_LABEL = "f1856211-cfb7-4a5b-9158-c0f72fd09ee6;;;;;;blank"
VEHICLE_LABEL = "e2895ed5-780b-48f6-8a11-9e27cb594511;;;;;;vehicle"
UNKNOWN_LABEL = (
    "f2efdae9-efb8-48fb-8a91-eccf79ab4ffb;no cv result;no cv result;no cv result;no cv result;no cv result;no cv result"
)


@dataclass(frozen=True)
class SpeciesNetRelease:
    """A SpeciesNet release folder, read from its ``info.json``.

    Attributes:
        folder: the release folder.
        version: ``info.json``'s ``version``.
        type: ``always_crop`` or ``full_image``.
        classifier, classifier_labels, taxonomy, geofence: the files inside ``folder``.
    """

    folder: Path
    version: str
    type: str
    classifier: Path
    classifier_labels: Path
    taxonomy: Path
    geofence: Path

    @property
    def preprocessing(self) -> Preprocessing:
        """The profile of this release's type."""
        return SPECIESNET_PREPROCESSING[self.type]

    @property
    def name(self) -> str:
        """``speciesnet-<version>``, the default ``info.classifier``."""
        return f"speciesnet-{self.version}"


def is_release(path: str | Path) -> bool:
    """Whether ``path`` is a folder with an ``info.json`` (a SpeciesNet release, or meant as one)."""
    path = Path(path)
    return path.is_dir() and (path / "info.json").is_file()


def read_release(folder: str | Path) -> SpeciesNetRelease:
    """Read and check a release folder's ``info.json``.

    Raises:
        ModelError: no ``info.json``, a field missing, an unknown ``type``, or a file it
            names that is not a plain file inside the folder.
    """
    folder = Path(folder)
    info_path = folder / "info.json"
    if not info_path.is_file():
        raise ModelError(f"{folder}: a folder without info.json; expected a SpeciesNet release folder")
    try:
        info = read_json(info_path)
    except InputFileError as e:
        raise ModelError(f"{info_path}: cannot read ({e.problem})") from None
    if not isinstance(info, dict):
        raise ModelError(f"{info_path}: not a JSON object; expected SpeciesNet's info.json")
    missing = [k for k in INFO_FIELDS if not isinstance(info.get(k), str) or not info.get(k)]
    if missing:
        raise ModelError(f"{info_path}: no {', '.join(missing)}; expected SpeciesNet's info.json")
    if info["type"] not in RELEASE_TYPES:
        raise ModelError(f"{info_path}: type {info['type']!r} is not one of {', '.join(RELEASE_TYPES)}")
    files = {k: _inside(folder, info[k], k, info_path) for k in ("classifier", "classifier_labels")}
    return SpeciesNetRelease(
        folder=folder,
        version=info["version"],
        type=info["type"],
        classifier=files["classifier"],
        classifier_labels=files["classifier_labels"],
        taxonomy=folder / info["taxonomy"],
        geofence=folder / info["geofence"],
    )


def _inside(folder: Path, name: str, field: str, info_path: Path) -> Path:
    """The file ``name`` of ``info.json``, which must be a plain file inside ``folder``."""
    path = folder / name
    if Path(name).is_absolute() or ".." in Path(name).parts or "/" in name or "\\" in name:
        raise ModelError(f"{info_path}: {field} {name!r} is not a file name inside the release folder")
    if not path.is_file():
        raise ModelError(f"{info_path}: {field} {name!r} is missing from {folder}")
    return path


def read_labels(path: str | Path) -> list[str]:
    """The seven-token labels of a labels or taxonomy file, one per non-empty line.

    Raises:
        ModelError: unreadable, or a line without seven tokens.
    """
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise ModelError(f"{path}: cannot read ({first_line(e)})") from None
    labels = []
    for number, line in enumerate(lines, 1):
        label = line.strip()
        if not label:
            continue
        if len(label.split(";")) != 7:
            raise ModelError(
                f"{path}: line {number} has {len(label.split(';'))} tokens; expected 7 "
                "(guid;class;order;family;genus;species;common name)"
            )
        labels.append(label)
    if not labels:
        raise ModelError(f"{path}: no labels")
    return labels


def common_name(label: str) -> str:
    """The class name of a label: its common name (the last token), else its lowest taxon."""
    tokens = label.split(";")
    return tokens[6].strip() or next((t for t in reversed(tokens[1:6]) if t.strip()), tokens[0])


def taxa_key(label: str) -> str:
    """``class;order;family;genus;species`` of a label (SpeciesNet's "full class string")."""
    return ";".join(label.split(";")[1:6])


def read_taxonomy_map(path: str | Path) -> dict[str, str]:
    """Taxa key -> label, as SpeciesNet's ensemble builds it from the release's taxonomy file.

    The non-taxa (blank, vehicle, unknown) are left out and "animal" is the kingdom (the
    empty key); human is put in as the ensemble does.

    Raises:
        ModelError: unreadable or malformed.
    """
    taxonomy = {taxa_key(label): label for label in read_labels(path)}
    for label in (BLANK_LABEL, VEHICLE_LABEL, UNKNOWN_LABEL):
        taxonomy.pop(taxa_key(label), None)
    for label in (HUMAN_LABEL, ANIMAL_LABEL):
        taxonomy[taxa_key(label)] = label
    return taxonomy


def read_geofence(path: str | Path) -> dict[str, dict[str, Any]]:
    """The geofence map: taxa key -> ``{"allow": {ISO3: [admin1...]}, "block": {...}}``.

    Raises:
        ModelError: unreadable, or not a JSON object of objects.
    """
    try:
        data = read_json(path)
    except InputFileError as e:
        raise ModelError(f"{path}: cannot read the geofence ({e.problem})") from None
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise ModelError(f"{path}: not a geofence (a JSON object of taxa to allow/block rules)")
    return data


def load_classifier(release: SpeciesNetRelease) -> torch.nn.Module:
    """Unpickle the release's classifier module on the CPU, in eval mode.

    This runs code from the file (``torch.load(..., weights_only=False)``), which is only
    safe for a trusted release: only the file named by the folder's ``info.json`` is loaded.

    Raises:
        ModelError: the file cannot be loaded (``onnx2torch`` missing, damaged, not a module).
    """
    import torch

    path = release.classifier
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            module = torch.load(path, map_location="cpu", weights_only=False)
    except ModuleNotFoundError as e:
        hint = (
            "pip install 'megaclassifier[speciesnet]'" if (e.name or "").startswith("onnx2torch") else "not installed"
        )
        raise ModelError(f"{path}: its module classes come from the {e.name} package ({hint})") from None
    except Exception as e:  # UnpicklingError, RuntimeError, EOFError ...
        raise ModelError(f"{path}: cannot load as a whole PyTorch module ({first_line(e)})") from None
    if not isinstance(module, torch.nn.Module):
        raise ModelError(f"{path}: holds a {type(module).__name__}, not a PyTorch module")
    for parameter in module.parameters():
        parameter.requires_grad_(False)
    return module.eval()
