"""Load a camera-trap image the way MegaDetector saw it.

* EXIF orientation is applied as MegaDetector applies it before detection
  (3: 180 degrees, 6: 270 degrees, 8: 90 degrees), so the boxes line up. The
  reference ``crop_detections.py`` skips this step and crops the wrong region of
  rotated photos.
* Truncated files are decoded as far as they go, as MegaDetector does, and
  a warning is returned with the image.
* Every image comes back in RGB (greyscale, palette, CMYK, 16-bit converted).
* An image not found under the local folder can be fetched from any fsspec URL
  (``https://``, ``s3://``, ``gs://``, ``az://``, ``file://``).
"""

from __future__ import annotations

import io
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from PIL import Image, ImageFile, UnidentifiedImageError

from megaclassifier.formats.atomic import write_bytes_atomic
from megaclassifier.formats.naming import safe_relative_path

#: EXIF orientation value -> the counter-clockwise rotation MegaDetector applies.
_EXIF_ROTATION = {
    3: Image.Transpose.ROTATE_180,
    6: Image.Transpose.ROTATE_270,
    8: Image.Transpose.ROTATE_90,
}
_ORIENTATION_TAG = 274
_truncated_lock = threading.Lock()


class ImageLoadError(Exception):
    """An image could not be read or decoded; the message is the reason."""


class SourceImage:
    """A decoded image as stored, seen the way MegaDetector saw it.

    The stored pixels are kept as decoded; the EXIF rotation and the RGB
    conversion are applied to each crop rather than to the whole photo, which
    gives the same pixels for a fraction of the work.

    Attributes:
        stored: the decoded image, in its file's orientation and mode.
        rotation: the transpose that turns it into MegaDetector's view, or None.
        width, height: the size of MegaDetector's view.
    """

    def __init__(self, stored: Image.Image, rotation: Image.Transpose | None) -> None:
        self.stored = stored
        self.rotation = rotation
        w, h = stored.size
        quarter_turn = rotation in (Image.Transpose.ROTATE_90, Image.Transpose.ROTATE_270)
        self.width, self.height = (h, w) if quarter_turn else (w, h)

    def view(self) -> Image.Image:
        """The whole image in MegaDetector's view, RGB."""
        image = self.stored if self.rotation is None else self.stored.transpose(self.rotation)
        return image if image.mode == "RGB" else image.convert("RGB")

    def crop(self, left: int, top: int, right: int, bottom: int) -> Image.Image:
        """Cut a region of the view, RGB; pixels outside the image are black."""
        cl, ct = max(left, 0), max(top, 0)
        cr, cb = min(right, self.width), min(bottom, self.height)
        inside = cl < cr and ct < cb
        if inside and (cl, ct, cr, cb) == (left, top, right, bottom) and self.rotation is None:
            region = self.stored.crop((left, top, right, bottom))
            return region if region.mode == "RGB" else region.convert("RGB")
        out = Image.new("RGB", (right - left, bottom - top))
        if inside:
            region = self.stored.crop(self._to_stored(cl, ct, cr, cb))
            if self.rotation is not None:
                region = region.transpose(self.rotation)
            out.paste(region if region.mode == "RGB" else region.convert("RGB"), (cl - left, ct - top))
        return out

    def _to_stored(self, left: int, top: int, right: int, bottom: int) -> tuple[int, int, int, int]:
        """Map an in-bounds view box to the stored image's coordinates."""
        sw, sh = self.stored.size
        if self.rotation == Image.Transpose.ROTATE_180:
            return sw - right, sh - bottom, sw - left, sh - top
        if self.rotation == Image.Transpose.ROTATE_270:  # view x <- stored y flipped, view y <- stored x
            return top, sh - right, bottom, sh - left
        if self.rotation == Image.Transpose.ROTATE_90:
            return sw - bottom, left, sw - top, right
        return left, top, right, bottom

    def close(self) -> None:
        self.stored.close()


@dataclass
class LoadedImage:
    """A decoded image and how it was obtained."""

    image: SourceImage
    source: str
    downloaded: bool = False
    warnings: list[str] = field(default_factory=list)


def local_image_path(file: str, images_dir: str | Path | None) -> Path | None:
    """Where ``file`` is on disk, or None if it is not there.

    An absolute ``file`` is used as it is; otherwise it is looked up under
    ``images_dir`` (``\\`` in ``file`` counts as a folder separator).
    """
    candidates: list[Path] = []
    if os.path.isabs(file):
        candidates.append(Path(file))
    if images_dir is not None:
        candidates.append(Path(images_dir, file))
        candidates.append(Path(images_dir, *safe_relative_path(file).parts))
    for path in candidates:
        if path.is_file():
            return path
    return None


def container_file_url(container_url: str, file: str) -> str:
    """The URL of ``file`` inside a container URL; a query string (an Azure SAS) is kept last."""
    parts = urlsplit(container_url)
    if parts.scheme in ("http", "https"):
        from urllib.parse import quote

        path = parts.path.rstrip("/") + "/" + quote(safe_relative_path(file).as_posix())
        return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))
    return container_url.rstrip("/") + "/" + safe_relative_path(file).as_posix()


def fetch_bytes(url: str) -> bytes:
    """Read a whole file from an fsspec URL."""
    import fsspec

    try:
        with fsspec.open(url, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise ImageLoadError(f"not found at {url}") from None
    except ImportError as e:
        raise ImageLoadError(f"cannot read {url}: {e} (install the fsspec backend for this URL)") from None
    except Exception as e:  # noqa: BLE001 - network backends raise many types
        raise ImageLoadError(f"download failed: {type(e).__name__}: {e}") from None


def decode_image(source: Any) -> tuple[SourceImage, list[str]]:
    """Fully decode an image file (path or file object), noting MegaDetector's orientation.

    Returns:
        The image and a list of warnings (a truncated file gives one).

    Raises:
        ImageLoadError: unreadable, empty or not an image.
    """
    warnings: list[str] = []
    try:
        image = _open_and_load(source)
        if getattr(image, "_ended", False):  # a lenient decode elsewhere reached a premature end
            warnings.append("truncated image file: decoded as far as the data goes")
    except UnidentifiedImageError:
        raise ImageLoadError("not an image file (or an unsupported format)") from None
    except FileNotFoundError:
        raise ImageLoadError("no such file") from None
    except OSError as e:
        if "truncated" not in str(e):
            raise ImageLoadError(f"cannot decode: {e}") from None
        if hasattr(source, "seek"):
            source.seek(0)
        with _truncated_lock:
            ImageFile.LOAD_TRUNCATED_IMAGES = True
            try:
                image = _open_and_load(source)
            except OSError as e2:
                raise ImageLoadError(f"cannot decode truncated file: {e2}") from None
            finally:
                ImageFile.LOAD_TRUNCATED_IMAGES = False
        warnings.append(f"truncated image file ({e}): decoded as far as the data goes, as MegaDetector does")
    except (ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise ImageLoadError(f"cannot decode: {e}") from None
    return SourceImage(image, exif_rotation(image)), warnings


def _open_and_load(source: Any) -> Image.Image:
    image = Image.open(source)
    image.load()
    return image


def exif_rotation(image: Image.Image) -> Image.Transpose | None:
    """The rotation MegaDetector applies for this image's EXIF orientation (3, 6, 8), or None."""
    try:
        orientation = image.getexif().get(_ORIENTATION_TAG)
    except Exception:  # noqa: BLE001 - broken EXIF blocks are common; ignore them like MD
        return None
    return _EXIF_ROTATION.get(orientation)  # type: ignore[arg-type]


def load_image(
    file: str,
    *,
    images_dir: str | Path | None = None,
    container_url: str | None = None,
    save_full_images: bool = False,
) -> LoadedImage:
    """Find, fetch if needed, and decode the image of a MegaDetector ``file`` entry.

    Raises:
        ImageLoadError: with the reason (missing, empty, corrupt, not an image,
            download failed).
    """
    path = local_image_path(file, images_dir)
    if path is not None:
        if path.stat().st_size == 0:
            raise ImageLoadError(f"{path}: empty file (0 bytes)")
        try:
            image, warnings = decode_image(path)
        except ImageLoadError as e:
            raise ImageLoadError(f"{path}: {e}") from None
        return LoadedImage(image, str(path), False, warnings)
    if container_url is None:
        where = f"under {images_dir}" if images_dir is not None else "(no --images-dir given)"
        raise ImageLoadError(f"image not found {where}")
    url = container_file_url(container_url, file)
    data = fetch_bytes(url)
    if not data:
        raise ImageLoadError(f"{url}: empty file (0 bytes)")
    try:
        image, warnings = decode_image(io.BytesIO(data))
    except ImageLoadError as e:
        raise ImageLoadError(f"{url}: {e}") from None
    if save_full_images and images_dir is not None:
        dest = Path(images_dir, *safe_relative_path(file).parts)
        dest.parent.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(dest, data)
    return LoadedImage(image, url, True, warnings)
