"""SpeciesNet's ensemble: one answer per classified box from its classifier's top 5 and the box.

PyPI ``speciesnet`` 5.0.6 (``ensemble_prediction_combiner.combine_predictions``) decides each
classified box on its own; 5.0.5 and earlier (``combine_predictions_for_single_item``) decided
once per image, from the classifier's answer on the image's top box and that box. The rules
are the same; with L the box's category, c its ``conf``, t and s the classifier's top class and
score, the first that fires wins:

====  ==============================================================  =====================
rule  when                                                            answer (source)
====  ==============================================================  =====================
1a    L human, c > 0.7                                                human, c (detector)
1b    L human, c > 0.2, t human or vehicle, s > 0.5                   human, s (classifier)
2a    L vehicle, c > 0.2, t human, s > 0.5                            human, s (classifier)
2b    L vehicle, c > 0.7                                              vehicle, c (detector)
2c    L vehicle, c > 0.2, t vehicle, s > 0.4                          vehicle, s (classifier)
3a    c < 0.2, t blank, s > 0.5                                       blank, s (classifier)
3b    t blank, s > 0.99                                               blank, s (classifier)
4a    t an animal, s > 0.8                                            t through the geofence
4b    t an animal, s > 0.65, L animal, c > 0.2                        t through the geofence
5a    the top 5 summed at genus, family, order, class, kingdom:       the ancestor, the sum
      the first level whose largest sum of a taxon not fenced out     (classifier+rollup_to_<level>)
      is > 0.65
5b    L animal, c > 0.5                                               animal, c (detector)
else                                                                  unknown, s (classifier)
====  ==============================================================  =====================

"Through the geofence": t itself (``classifier``) unless the geofence leaves it out of
``--country`` (and region); then the top 5 summed at family, order, class and kingdom, the
first level whose largest allowed sum passes s - 1e-10 (``classifier+geofence+rollup_to_family``
...), else unknown (``classifier+geofence+rollup_failed``). Without a country nothing is fenced.
The category "person" of MegaDetector files is SpeciesNet's detection label "human".

Which boxes are classified (:func:`select_boxes`): 5.0.6 classifies every box with
conf >= 0.1 of any category, at most ``max_per_image`` of them (the highest conf; the first on
ties); 5.0.5 classified the top box (the highest conf) of each image only, and so do whole-image
(``full_image``) releases under both, whose one answer is ensembled with the top box.

:func:`ensemble_results` writes each answer into the MegaDetector results: the answer first in
``classifications`` (Timelapse reads only the first), the classifier's own list in
``raw_classifications``, the rule in ``classification_source``; classes the ensemble adds
(rolled-up taxa, "animal", "unknown") get IDs after the classifier's, in the release taxonomy's
order (so every shard of a run numbers them alike), and their seven-token labels in
``classification_category_descriptions``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from megaclassifier.models.speciesnet import (
    ANIMAL_LABEL,
    BLANK_LABEL,
    HUMAN_LABEL,
    UNKNOWN_LABEL,
    VEHICLE_LABEL,
    common_name,
)
from megaclassifier.postprocess.roll import (
    GEOFENCE_SEMANTICS,
    SEMANTICS,
    Semantics,
    roll_up,
    speciesnet_ancestor,
    speciesnet_fence,
)

if TYPE_CHECKING:
    from megaclassifier.models.speciesnet import SpeciesNetRelease

#: ``--ensemble`` choices: SpeciesNet 5.0.6's per-box rules, 5.0.5's per-image ones, none (the raw top-k).
SPECIESNET = "speciesnet"
SPECIESNET_LEGACY = "speciesnet-legacy"
NONE = "none"
ENSEMBLES = (SPECIESNET, SPECIESNET_LEGACY, NONE)

#: SpeciesNet's thresholds: boxes classified, the roll-up's, and how many classes the ensemble reads.
CLASSIFICATION_BOX_THRESHOLD = 0.1
ROLLUP_THRESHOLD = 0.65
ENSEMBLE_TOP = 5
#: Rule 5a's roll-up: genus..kingdom, strictly above the threshold (``rollup --semantics speciesnet``).
ROLLUP_SEMANTICS = SEMANTICS["speciesnet"]
#: MegaDetector category names -> SpeciesNet's detection labels.
DETECTION_LABELS = {"person": "human"}
_NOT_ANIMAL = (BLANK_LABEL, HUMAN_LABEL, VEHICLE_LABEL)


@dataclass(frozen=True)
class Prediction:
    """One answer of the ensemble: SpeciesNet's ``{class, score, source}``."""

    label: str
    score: float
    source: str


@dataclass(frozen=True)
class EnsembleRules:
    """What the rules need besides the box: the release's taxonomy map and geofence, and where.

    Attributes:
        taxonomy_map: taxa key -> label (:func:`~megaclassifier.models.speciesnet.read_taxonomy_map`).
        geofence: the release's geofence map.
        country, admin1_region: ``--country`` and ``--admin1-region`` (None: no geofence).
    """

    taxonomy_map: dict[str, str]
    geofence: dict[str, dict[str, Any]]
    country: str | None = None
    admin1_region: str | None = None
    #: The fence and ancestor functions, with their caches: the rules are the same for every box.
    _memo: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def fenced(self, label: str) -> bool:
        """SpeciesNet's ``should_geofence_animal_classification`` for ``label`` (:func:`~.roll.speciesnet_fence`)."""
        if "fence" not in self._memo:
            self._memo["fence"] = speciesnet_fence(self.geofence, self.country, self.admin1_region)
        fence = self._memo["fence"]
        return fence is not None and fence(label)

    def roll_up(
        self, labels: Sequence[str], scores: Sequence[float], semantics: Semantics, threshold: float
    ) -> tuple[str, float, str] | None:
        """The one roll-up (:func:`~megaclassifier.postprocess.roll.roll_up`) over the release's taxonomy,
        skipping fenced taxa."""
        up = self._memo.get("up")
        if up is None:
            up = self._memo["up"] = speciesnet_ancestor(self.taxonomy_map)
        return roll_up(zip(labels, scores, strict=True), up, threshold, semantics, fenced=self.fenced)

    def through_geofence(self, labels: Sequence[str], scores: Sequence[float]) -> Prediction:
        """Rules 4a/4b's answer: the top class, or its roll-up past the geofence."""
        if not self.fenced(labels[0]):
            return Prediction(labels[0], scores[0], "classifier")
        found = self.roll_up(labels, scores, GEOFENCE_SEMANTICS, scores[0] - 1e-10)
        if found is None:
            return Prediction(UNKNOWN_LABEL, scores[0], "classifier+geofence+rollup_failed")
        return Prediction(found[0], found[1], f"classifier+geofence+rollup_to_{found[2]}")


def combine(
    labels: Sequence[str], scores: Sequence[float], detection: str, conf: float, rules: EnsembleRules
) -> Prediction:
    """The ensemble's answer for one box (see the module docstring for the rules).

    Args:
        labels, scores: the classifier's top classes (SpeciesNet reads 5), most confident first.
        detection: the box's SpeciesNet label (``animal``, ``human``, ``vehicle``).
        conf: the box's confidence.
        rules: the release's taxonomy and geofence, and the place.
    """
    top, score = labels[0], scores[0]
    person_or_vehicle = _person_or_vehicle(top, score, detection, conf)
    if person_or_vehicle is not None:
        return person_or_vehicle
    if top == BLANK_LABEL and ((conf < 0.2 and score > 0.5) or score > 0.99):
        return Prediction(BLANK_LABEL, score, "classifier")
    if top not in _NOT_ANIMAL and (score > 0.8 or (score > 0.65 and detection == "animal" and conf > 0.2)):
        return rules.through_geofence(labels, scores)
    found = rules.roll_up(labels, scores, ROLLUP_SEMANTICS, ROLLUP_THRESHOLD)
    if found is not None:
        return Prediction(found[0], found[1], f"classifier+rollup_to_{found[2]}")
    if detection == "animal" and conf > 0.5:
        return Prediction(ANIMAL_LABEL, conf, "detector")
    return Prediction(UNKNOWN_LABEL, score, "classifier")


def _person_or_vehicle(top: str, score: float, detection: str, conf: float) -> Prediction | None:
    """Rules 1a-2c: a human or vehicle box; None when none fires."""
    if detection == "human":
        if conf > 0.7:
            return Prediction(HUMAN_LABEL, conf, "detector")
        if conf > 0.2 and top in (HUMAN_LABEL, VEHICLE_LABEL) and score > 0.5:
            return Prediction(HUMAN_LABEL, score, "classifier")
    if detection == "vehicle":
        if conf > 0.2 and top == HUMAN_LABEL and score > 0.5:
            return Prediction(HUMAN_LABEL, score, "classifier")
        if conf > 0.7:
            return Prediction(VEHICLE_LABEL, conf, "detector")
        if conf > 0.2 and top == VEHICLE_LABEL and score > 0.4:
            return Prediction(VEHICLE_LABEL, score, "classifier")
    return None


def select_boxes(
    detections: Sequence[dict[str, Any]],
    *,
    ensemble: str,
    whole_image: bool,
    max_per_image: int | None,
    threshold: float = 0.0,
) -> set[int]:
    """The indices of the boxes the ensemble classifies (see the module docstring).

    ``threshold`` (``run --threshold``) leaves out boxes below it as well.
    """
    confs = [float(det.get("conf", 1.0)) for det in detections]
    if ensemble == SPECIESNET_LEGACY or whole_image:
        top = max(range(len(confs)), key=lambda i: (confs[i], -i), default=None)
        return {top} if top is not None and confs[top] >= threshold else set()
    floor = max(CLASSIFICATION_BOX_THRESHOLD, threshold)
    chosen = [i for i, conf in enumerate(confs) if conf >= floor]
    if max_per_image is not None:
        chosen = sorted(chosen, key=lambda i: -confs[i])[:max_per_image]  # stable: the first on ties
    return set(chosen)


def classes_kept(threshold: float, max_classifications: int | None) -> int | None:
    """How many top classes ``run`` keeps per box under an ensemble (None: all).

    The ensemble reads the top :data:`ENSEMBLE_TOP`; ``raw_classifications`` keeps those at or above
    ``threshold`` (at most 1 / threshold of them, the probabilities summing to 1), at most
    ``max_classifications``.
    """
    if max_classifications is not None:
        return max(ENSEMBLE_TOP, max_classifications)
    if threshold <= 0:
        return None
    return max(ENSEMBLE_TOP, int(1 / threshold) + 1)


@dataclass
class EnsembleSummary:
    """What :func:`ensemble_results` did: boxes decided, by source, and how many differ from the raw top-1."""

    ensemble: str
    boxes: int = 0
    changed: int = 0
    sources: Counter[str] | None = None

    def record(self, rules: EnsembleRules) -> dict[str, Any]:
        """The step's entry in ``info.classification_postprocessing`` (no counts: the shards of a run share it)."""
        return {"step": "ensemble", "ensemble": self.ensemble, "country": rules.country,
                "admin1_region": rules.admin1_region}  # fmt: skip


class EnsembleClasses:
    """Class IDs of the ensemble's answers.

    The classifier's own, then the taxonomy's other labels in its order, then blank, vehicle and
    unknown where the classifier has none: the same IDs in every run and shard with the release.
    """

    def __init__(self, class_labels: Sequence[str], taxonomy_map: dict[str, str]) -> None:
        self.by_label: dict[str, str] = {}
        for cid, label in enumerate(class_labels):
            self.by_label.setdefault(label, str(cid))
        next_id = len(class_labels)
        for label in [*taxonomy_map.values(), BLANK_LABEL, VEHICLE_LABEL, UNKNOWN_LABEL]:
            if label not in self.by_label:
                self.by_label[label] = str(next_id)
                next_id += 1
        self.labels = {cid: label for label, cid in self.by_label.items()}
        for cid, label in enumerate(class_labels):
            self.labels[str(cid)] = label


def ensemble_results(
    data: dict[str, Any],
    class_labels: Sequence[str],
    rules: EnsembleRules,
    *,
    ensemble: str,
    threshold: float,
    max_classifications: int | None,
    detection_categories: dict[str, str] | None = None,
) -> EnsembleSummary:
    """Decide every classified detection of loaded results, in place (see the module docstring).

    Each ``classifications`` list must hold the classifier's top classes (at least
    :data:`ENSEMBLE_TOP`, unthresholded; ``run`` keeps them so under an ensemble): the ensemble
    reads the first five; ``raw_classifications`` keeps those at or above ``threshold``, at most
    ``max_classifications``.
    """
    classes = EnsembleClasses(class_labels, rules.taxonomy_map)
    categories = detection_categories if detection_categories is not None else data.get("detection_categories") or {}
    summary = EnsembleSummary(ensemble, sources=Counter())
    used: set[str] = set()
    for image in data.get("images") or ():
        for det in image.get("detections") or ():
            raw = det.get("classifications")
            if not raw:
                continue
            top = raw[:ENSEMBLE_TOP]
            labels = [classes.labels[str(cid)] for cid, _ in top]
            name = str(categories.get(str(det.get("category")), ""))
            answer = combine(labels, [float(s) for _, s in top], DETECTION_LABELS.get(name, name),
                             float(det.get("conf", 1.0)), rules)  # fmt: skip
            cid = classes.by_label[answer.label]
            kept = [c for c in raw if c[1] >= threshold][:max_classifications]
            det["classifications"] = [[cid, answer.score], *(c for c in kept if c[0] != cid)]
            det["raw_classifications"] = kept
            det["classification_source"] = answer.source
            used.add(cid)
            summary.boxes += 1
            summary.changed += cid != str(raw[0][0])
            assert summary.sources is not None
            summary.sources[answer.source] += 1
    names = dict(data.get("classification_categories") or {})
    descriptions = dict(data.get("classification_category_descriptions") or {})
    for cid in sorted(used - set(names), key=int):
        names[cid] = common_name(classes.labels[cid])
        descriptions[cid] = classes.labels[cid]
    data["classification_categories"] = names
    data["classification_category_descriptions"] = descriptions
    return summary


def record_step(data: dict[str, Any], summary: EnsembleSummary, rules: EnsembleRules) -> None:
    """Append the step's record to ``info.classification_postprocessing``."""
    from megaclassifier import __version__

    info = data.get("info")
    if not isinstance(info, dict):
        info = data["info"] = {}
    steps = info.get("classification_postprocessing")
    record = {**summary.record(rules), "megaclassifier_version": __version__}
    info["classification_postprocessing"] = [*(steps if isinstance(steps, list) else []), record]


@dataclass(frozen=True)
class Ensemble:
    """An ensemble over one release's output: the rules, the release's labels, and which boxes.

    Attributes:
        mode: ``speciesnet`` or ``speciesnet-legacy``.
        class_labels: the release's label of each class.
        rules: the taxonomy map, geofence and ``--country`` / ``--admin1-region``.
        whole_image: a ``full_image`` release (one answer per image, on its top box).
        max_per_image: ``--max-classifications-per-image``.
    """

    mode: str
    class_labels: list[str]
    rules: EnsembleRules
    whole_image: bool
    max_per_image: int | None

    def select(self, threshold: float) -> Callable[[list[dict[str, Any]]], set[int]]:
        """The boxes of an image to classify (:func:`select_boxes`)."""

        def chosen(detections: list[dict[str, Any]]) -> set[int]:
            return select_boxes(detections, ensemble=self.mode, whole_image=self.whole_image,
                                max_per_image=self.max_per_image, threshold=threshold)  # fmt: skip

        return chosen

    def apply(self, data: dict[str, Any], threshold: float, max_classifications: int | None) -> EnsembleSummary:
        """:func:`ensemble_results` on merged results, and the step's record."""
        summary = ensemble_results(data, self.class_labels, self.rules, ensemble=self.mode, threshold=threshold,
                                   max_classifications=max_classifications)  # fmt: skip
        record_step(data, summary, self.rules)
        return summary


def load_ensemble(
    release: SpeciesNetRelease,
    class_labels: Sequence[str],
    mode: str,
    *,
    country: str | None = None,
    admin1_region: str | None = None,
    max_per_image: int | None = None,
) -> Ensemble:
    """The ensemble ``mode`` over ``release``'s output: its taxonomy and geofence read.

    Raises:
        ModelError: the release's taxonomy or geofence file is unusable.
    """
    from megaclassifier.models.speciesnet import FULL_IMAGE, read_geofence, read_taxonomy_map

    country = country.upper() if country else None
    admin1_region = admin1_region.upper() if admin1_region else None
    rules = EnsembleRules(read_taxonomy_map(release.taxonomy), read_geofence(release.geofence), country, admin1_region)
    return Ensemble(mode, list(class_labels), rules, release.type == FULL_IMAGE, max_per_image)
