"""File formats: one module owns each format and naming rule.

* :mod:`.detections`: MegaDetector batch-output JSON (read, validate, write).
* :mod:`.naming`: crop file names (``{file}___crop{i:02d}_{detector}.jpg``).
* :mod:`.probabilities`: the classifier probability CSV and index-to-name JSON.
* :mod:`.atomic`: temp-file-then-rename writers used by every output.
"""
