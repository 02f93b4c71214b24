"""Load a camera-trap image the way MegaDetector saw it.

* EXIF orientation is applied as MegaDetector applies it before detection
  (3: 180 degrees, 6: 270 degrees, 8: 90 degrees), so the boxes line up. The
  reference ``crop_detections.py`` skips this step and crops the wrong region of
  rotated photos.
* Truncated files are decoded as far as they go, as MegaDetector does, and
  a warning is returned with the image.
* Every image comes back in RGB (greyscale, palette, CMYK, 16-bit converted).
* An image not found under the local folder can be fetched from any fsspec URL
  (``https://``, ``s3://``, ``gs://``, ``az://``, ``file://``). ``http(s)``
  fetches wait at most ``timeout`` seconds to connect and for each piece of
  data; transient errors are retried with backoff (:mod:`megaclassifier.netio`).
* Path rules: a relative ``file`` is looked up under the images folder and
  must stay inside it (``../x.jpg`` and ``sub/../../x.jpg`` are refused
  before anything is opened, unless ``allow_outside_images_dir``); an absolute
  ``file`` is read as it stands, as MegaDetector files made without relative
  names hold them. Any OS error about one image (a name too long, no
  permission) is that image's failure.
"""

from __future__ import annotations

import functools
import io
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from PIL import Image, ImageFile, UnidentifiedImageError

from megaclassifier.constants import DEFAULT_TIMEOUT
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
        reduction: the JPEG draft reduction it was decoded at (1, 2, 4 or 8): one of its
            pixels is ``reduction`` pixels of the file's full size on each side.
        width, height: the size of MegaDetector's view (at the reduction).
        full_width, full_height: the size of MegaDetector's view at full size.
    """

    def __init__(
        self,
        stored: Image.Image,
        rotation: Image.Transpose | None,
        reduction: int = 1,
        full_size: tuple[int, int] | None = None,
    ) -> None:
        self.stored = stored
        self.rotation = rotation
        self.reduction = reduction
        w, h = stored.size
        fw, fh = full_size or (w, h)
        quarter_turn = rotation in (Image.Transpose.ROTATE_90, Image.Transpose.ROTATE_270)
        self.width, self.height = (h, w) if quarter_turn else (w, h)
        self.full_width, self.full_height = (fh, fw) if quarter_turn else (fw, fh)

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


def leaves_folder(file: str) -> bool:
    """Whether a relative ``file`` leads out of the folder it is joined to (``..`` past its top)."""
    depth = 0
    for part in file.replace("\\", "/").split("/"):
        if part == "..":
            depth -= 1
            if depth < 0:
                return True
        elif part not in ("", "."):
            depth += 1
    return False


def local_image_path(
    file: str, images_dir: str | Path | None, *, allow_outside_images_dir: bool = False
) -> Path | None:
    """Where ``file`` is on disk, or None if it is not there.

    An absolute ``file`` is used as it is; otherwise it is looked up under
    ``images_dir`` (``\\`` in ``file`` counts as a folder separator).

    Raises:
        ImageLoadError: a relative ``file`` leads out of ``images_dir`` and
            ``allow_outside_images_dir`` is not set; nothing was opened.
        OSError: the file system refuses to look (a name too long).
    """
    candidates: list[Path] = []
    if os.path.isabs(file):
        candidates.append(Path(file))
    elif images_dir is not None and leaves_folder(file) and not allow_outside_images_dir:
        raise ImageLoadError(
            f"refused: {file!r} leads outside --images-dir {images_dir} (--allow-outside-images-dir allows it)"
        )
    if images_dir is not None:
        candidates.append(Path(images_dir, file))
        if allow_outside_images_dir:
            candidates.append(Path(images_dir, file.replace("\\", "/")))
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


def fetch_bytes(url: str, *, timeout: float = DEFAULT_TIMEOUT) -> bytes:
    """Read a whole file from an fsspec URL, retrying transient errors (http(s): with ``timeout``).

    Raises:
        ImageLoadError: not found, or still failing after the retries.
    """
    import urllib.error

    from megaclassifier.netio import describe_error, http_get_bytes, with_retries

    if urlsplit(url).scheme in ("http", "https"):
        attempt = functools.partial(http_get_bytes, url, timeout=timeout)
    else:
        attempt = functools.partial(_fsspec_read, url)
    try:
        return with_retries(attempt, what=url)
    except FileNotFoundError:
        raise ImageLoadError(f"not found at {url}") from None
    except urllib.error.HTTPError as e:
        if e.code == 404:
            raise ImageLoadError(f"not found at {url}") from None
        raise ImageLoadError(f"download failed: {url}: {describe_error(e)}") from None
    except ImportError as e:
        raise ImageLoadError(f"cannot read {url}: {e} (install the fsspec backend for this URL)") from None
    except Exception as e:  # noqa: BLE001 - network backends raise many types
        raise ImageLoadError(f"download failed: {url}: {describe_error(e)}") from None


def _fsspec_read(url: str) -> bytes:
    import fsspec

    with fsspec.open(url, "rb") as f:
        return f.read()


#: Called on an opened, not yet decoded image; may set a JPEG draft and returns the reduction (1: none).
Draft = Callable[[Image.Image], int]


def decode_image(source: Any, draft: Draft | None = None) -> tuple[SourceImage, list[str]]:
    """Fully decode an image file (path or file object), noting MegaDetector's orientation.

    ``draft``, when given, sees the opened image before its pixels are decoded
    (see :data:`Draft`).

    Returns:
        The image and a list of warnings (a truncated file gives one).

    Raises:
        ImageLoadError: unreadable, empty or not an image.
    """
    warnings: list[str] = []
    try:
        image, reduction, full_size = _open_and_load(source, draft)
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
                image, reduction, full_size = _open_and_load(source, draft)
            except OSError as e2:
                raise ImageLoadError(f"cannot decode truncated file: {e2}") from None
            finally:
                ImageFile.LOAD_TRUNCATED_IMAGES = False
        warnings.append(f"truncated image file ({e}): decoded as far as the data goes, as MegaDetector does")
    except (ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise ImageLoadError(f"cannot decode: {e}") from None
    return SourceImage(image, exif_rotation(image), reduction, full_size), warnings


def _open_and_load(source: Any, draft: Draft | None) -> tuple[Image.Image, int, tuple[int, int]]:
    image = Image.open(source)
    full_size = image.size
    reduction = draft(image) if draft is not None else 1
    image.load()
    return image, reduction, full_size


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
    timeout: float = DEFAULT_TIMEOUT,
    allow_outside_images_dir: bool = False,
    draft: Draft | None = None,
) -> LoadedImage:
    """Find, fetch if needed, and decode the image of a MegaDetector ``file`` entry.

    Args:
        file: the entry's ``file``.
        images_dir: local root of the images.
        container_url: fsspec URL to fetch images not found locally from.
        save_full_images: keep a fetched image under ``images_dir``.
        timeout: seconds a server may take to connect or to send more data.
        allow_outside_images_dir: read relative paths that lead out of ``images_dir``.
        draft: decode at a JPEG draft reduction (see :func:`decode_image`).

    Raises:
        ImageLoadError: with the reason (refused path, missing, empty, corrupt,
            not an image, download failed, any OS error).
    """
    try:
        return _load_image(file, images_dir, container_url, save_full_images, timeout, allow_outside_images_dir, draft)
    except OSError as e:
        where = e.filename if e.filename is not None else file
        raise ImageLoadError(f"{where}: {e.strerror or e}") from None


def _load_image(
    file: str,
    images_dir: str | Path | None,
    container_url: str | None,
    save_full_images: bool,
    timeout: float,
    allow_outside_images_dir: bool,
    draft: Draft | None = None,
) -> LoadedImage:
    path = local_image_path(file, images_dir, allow_outside_images_dir=allow_outside_images_dir)
    if path is not None:
        if path.stat().st_size == 0:
            raise ImageLoadError(f"{path}: empty file (0 bytes)")
        try:
            image, warnings = decode_image(path, draft)
        except ImageLoadError as e:
            raise ImageLoadError(f"{path}: {e}") from None
        return LoadedImage(image, str(path), False, warnings)
    if container_url is None:
        where = f"under {images_dir}" if images_dir is not None else "(no --images-dir given)"
        raise ImageLoadError(f"image not found {where}")
    url = container_file_url(container_url, file)
    data = fetch_bytes(url, timeout=timeout)
    if not data:
        raise ImageLoadError(f"{url}: empty file (0 bytes)")
    try:
        image, warnings = decode_image(io.BytesIO(data), draft)
    except ImageLoadError as e:
        raise ImageLoadError(f"{url}: {e}") from None
    if save_full_images and images_dir is not None:
        dest = Path(images_dir, *safe_relative_path(file).parts)
        dest.parent.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(dest, data)
    return LoadedImage(image, url, True, warnings)
