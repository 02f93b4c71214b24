"""Opening images: local paths, URLs and files inside archives, decoded once with their
EXIF rotation (``loading``), and the EXIF dates and camera fields read from them
(``exif``). Crop, run, report, export and the post-processing steps all load here."""
