"""Constants shared by every stage: one place, like timm's data constants."""

from __future__ import annotations

#: ImageNet channel statistics used by the reference's Normalize step.
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

#: Native input sizes of the EfficientNet family (reference train_classifier).
EFFICIENTNET_NATIVE_SIZE: dict[str, int] = {
    "efficientnet-b0": 224,
    "efficientnet-b1": 240,
    "efficientnet-b2": 260,
    "efficientnet-b3": 300,
    "efficientnet-b4": 380,
    "efficientnet-b5": 456,
    "efficientnet-b6": 528,
    "efficientnet-b7": 600,
    "efficientnet-b8": 672,
    "efficientnet-l2": 800,
}

#: The reference run_classifier's --image-size default.
DEFAULT_IMAGE_SIZE = 224

#: Pillow's default JPEG quality, which the reference's crops are saved with.
CROP_JPEG_QUALITY = 75

#: The detection category name that is cropped and classified.
ANIMAL_CATEGORY = "animal"

#: Detector name used in crop file names when the JSON names none.
UNKNOWN_DETECTOR = "unknown"

#: merge's default classification threshold (reference).
DEFAULT_MERGE_THRESHOLD = 0.1

#: ``info.classifier_metadata.typical_classification_threshold`` when none is given: the value
#: MegaDetector's classification scripts pass (``prepare_classification_script.py``), which
#: Timelapse takes as its default classification threshold.
DEFAULT_TYPICAL_CLASSIFICATION_THRESHOLD = 0.75

#: ``report`` and ``export`` leave out detections below this confidence (``crop`` keeps the reference's 0).
DEFAULT_REVIEW_THRESHOLD = 0.15

#: Crops per inference batch in ``classify``, ``features`` and ``run``.
DEFAULT_BATCH_SIZE = 32

#: ``--device`` forms, ``--precision`` and ``--backend`` choices.
DEVICE_HELP = "auto, cpu, cuda, cuda:N or N"
PRECISIONS = ("fp32", "fp16", "bf16")
BACKENDS = ("auto", "torch", "onnxruntime", "openvino")

#: How far (as a fraction of the image) a box's x, y, width and height may exceed [0, 1]:
#: MegaDetector rounds its boxes, so 1.0001 happens; anything further is an invalid box.
BOX_TOLERANCE = 0.01

#: How far outside [0, 1] a probability read from a CSV may be (float rounding of sums).
PROBABILITY_TOLERANCE = 1e-4

#: Seconds to wait for a server to connect or to send the next bytes (--timeout).
DEFAULT_TIMEOUT = 30.0

#: Retries of a fetch after a transient error (timeout, refused or reset connection,
#: HTTP 408, 429 or 5xx), waiting RETRY_BACKOFF, 2x, 4x ... seconds in between.
FETCH_RETRIES = 2
RETRY_BACKOFF = 0.5

#: How deep objects and arrays may nest in a JSON input (a MegaDetector results file needs 6);
#: deeper is refused in one line (formats/json_input.py), never a RecursionError.
MAX_JSON_DEPTH = 64
