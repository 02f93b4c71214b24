"""One streamed pass over a results file, keeping only the labelled images' detections.

Results are read image by image (:class:`~megaclassifier.formats.detections_stream.StreamedResults`),
so a file of a million detections is never held whole: only the detections of
images that have a label are kept, each as one small :class:`ScannedDetection`
named by every :class:`~megaclassifier.evaluate.rules.Namer` asked for (raw, remapped ...).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from megaclassifier.evaluate.labels import match_key
from megaclassifier.evaluate.rules import Namer, Rules, Vote, detection_class
from megaclassifier.formats.detections_stream import StreamedResults
from megaclassifier.labels.descriptions import Taxon, parse_description


@dataclass(frozen=True, slots=True)
class ScannedDetection:
    """A detection at or above the threshold of a labelled image.

    Attributes:
        index: its position in the image's ``detections``.
        bbox: ``(x, y, width, height)``, normalised.
        conf: detection confidence.
        names, scores: its class and score by each namer (rules 2 and 3).
        tops: its top class by each namer before the classification threshold (None: no classes).
        listed: every listed class and score by the first namer (only when asked: ``learn-mapping``).
    """

    index: int
    bbox: tuple[float, float, float, float]
    conf: float
    names: tuple[str, ...]
    scores: tuple[float, ...]
    tops: tuple[str | None, ...]
    listed: tuple[tuple[str, float], ...] = ()


@dataclass
class Scan:
    """What a pass kept.

    Attributes:
        path: the results file.
        images: match key -> (the image's ``file``, its detections), for labelled images.
        classes: the file's classification category names (lower case), in ID order.
        taxa: class name -> taxon, from ``classification_category_descriptions``.
        results_images: images in the file.
        failed: labelled images the file has no detections list for (left out).
    """

    path: Path
    images: dict[str, tuple[str, list[ScannedDetection]]] = field(default_factory=dict)
    classes: list[str] = field(default_factory=list)
    taxa: dict[str, Taxon] = field(default_factory=dict)
    results_images: int = 0
    failed: int = 0

    def vote(self, key: str, namer: int, *, index: int | None = None) -> Vote:
        """The detections of image ``key`` (or only detection ``index``) counted by namer ``namer``."""
        vote = Vote()
        for det in self.images[key][1]:
            if index is None or det.index == index:
                vote.add(det.names[namer], det.scores[namer])
        return vote


def read_header_classes(path: str | Path) -> tuple[dict[str, str], dict[str, Taxon]]:
    """The results' classification categories (ID -> name) and the taxa their descriptions give."""
    header = StreamedResults(path).header
    return _classes(header), _taxa(header)


def _classes(header: dict) -> dict[str, str]:
    categories = header.get("classification_categories")
    return {str(k): str(v) for k, v in categories.items()} if isinstance(categories, dict) else {}


def _taxa(header: dict) -> dict[str, Taxon]:
    classes = _classes(header)
    descriptions = header.get("classification_category_descriptions")
    taxa = {}
    for cid, text in descriptions.items() if isinstance(descriptions, dict) else []:
        taxon = parse_description(text)
        if taxon is not None and str(cid) in classes:
            taxa[classes[str(cid)].lower()] = taxon
    return taxa


def scan_results(
    path: str | Path,
    keys: Collection[str],
    namers: Sequence[Namer] | Callable[[dict[str, str]], Sequence[Namer]],
    rules: Rules,
    *,
    ignore_case: bool = False,
    keep_classes: bool = False,
) -> Scan:
    """Keep the detections of the images whose match key is in ``keys``, named by each namer.

    ``namers`` may be a function of the file's classification categories (ID -> name), so the header is
    read once. ``keep_classes``: keep every listed class of the animal detections too
    (:attr:`ScannedDetection.listed`).

    Raises:
        InputFileError: the file is missing or not a MegaDetector results file.
    """
    results = StreamedResults(path)
    header = results.header
    categories = {str(k): str(v).lower() for k, v in (header.get("detection_categories") or {}).items()}
    scan = Scan(Path(path), classes=[v.lower() for v in _classes(header).values()], taxa=_taxa(header))
    if callable(namers):
        namers = namers(_classes(header))
    for image in results.images():
        scan.results_images += 1
        key = match_key(image["file"], ignore_case=ignore_case)
        if key not in keys:
            continue
        detections = image.get("detections")
        if image.get("failure") or not isinstance(detections, list):
            scan.failed += 1
            continue
        kept = []
        for index, det in enumerate(detections):
            conf = det.get("conf")
            category = categories.get(str(det.get("category")))
            if category is None or (conf is not None and conf < rules.threshold):
                continue
            named = [detection_class(det, category, namer, rules) for namer in namers]
            bbox = tuple(float(v) for v in det.get("bbox") or (0, 0, 0, 0))
            listed = namers[0].scores(det.get("classifications")) if keep_classes and named[0][2] else {}
            kept.append(
                ScannedDetection(
                    index, bbox, float(conf if conf is not None else 1.0),  # type: ignore[arg-type]
                    tuple(n[0] for n in named), tuple(n[1] for n in named), tuple(n[2] for n in named),
                    tuple(listed.items()),
                )
            )  # fmt: skip
        scan.images[key] = (image["file"], kept)
    return scan
