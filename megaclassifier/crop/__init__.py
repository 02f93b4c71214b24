"""Cropping MegaDetector boxes: geometry, image loading and the ``crop`` command."""

from megaclassifier.crop.crop import CropSummary, crop_detections
from megaclassifier.crop.geometry import CropBox, crop_box, extract_crop

__all__ = ["CropBox", "CropSummary", "crop_box", "crop_detections", "extract_crop"]
