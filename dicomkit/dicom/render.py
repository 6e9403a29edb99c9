"""Rendering a DICOM image for people: modality LUT, window/level (VOI LUT) from the data set,
MONOCHROME1 inverted, to 8-bit grey or RGB. Used by WADO-RS ``/rendered`` (PS3.18 8.3.5.1.2.6)
and by ``dicomkit show``; the one place where pixels become a picture.
"""

from __future__ import annotations

from dataclasses import dataclass
from io import BytesIO
from typing import TYPE_CHECKING, Any

from dicomkit.errors import DicomkitError

if TYPE_CHECKING:
    from PIL.Image import Image
    from pydicom.dataset import Dataset

# PS3.18 Table 8.7.4-1 (rendered media types): the two every origin server must offer.
MEDIA_TYPES = {"image/jpeg": "JPEG", "image/png": "PNG"}


class NotAnImage(DicomkitError):
    """The instance has no pixel data, or none that can be decoded here."""


@dataclass(frozen=True)
class Window:
    center: float
    width: float


def _first(value: Any) -> float | None:
    """The first number of a (possibly multi-valued) DS element."""
    if value is not None and not isinstance(value, (str, int, float)):
        value = next(iter(value), None)  # MultiValue: the first window is the default one
    try:
        return None if value is None or value == "" else float(value)
    except (TypeError, ValueError):
        return None


def window_of(ds: Dataset) -> Window | None:
    """The data set's first Window Center/Width (PS3.3 C.11.2.1.2), or None."""
    center, width = _first(ds.get("WindowCenter")), _first(ds.get("WindowWidth"))
    if center is None or width is None or width < 1:
        return None
    return Window(center, width)


def frame_count(ds: Dataset) -> int:
    try:
        return max(1, int(ds.get("NumberOfFrames") or 1))
    except (TypeError, ValueError):
        return 1


def pixels(ds: Dataset, frame: int = 0) -> Any:
    """One frame's pixel values as stored (numpy), decoded when compressed."""
    if "PixelData" not in ds:
        raise NotAnImage(
            f"the instance (SOP Class {ds.get('SOPClassUID', '?')}) has no pixel data",
            "only image instances can be rendered; ask for its metadata instead",
        )
    if not 0 <= frame < frame_count(ds):
        raise NotAnImage(
            f"frame {frame + 1} does not exist (the instance has {frame_count(ds)})",
            "frames are numbered from 1",
        )
    try:
        from pydicom.pixels import pixel_array

        return pixel_array(ds, index=frame if frame_count(ds) > 1 else None)
    except Exception as exc:  # a decoder missing or failing: the data set cannot be shown
        raise NotAnImage(
            f"cannot decode the pixel data ({type(exc).__name__}: {exc})",
            "the transfer syntax may need a decoder pydicom lacks here",
        ) from None


def render(ds: Dataset, frame: int = 0, window: Window | None = None) -> Image:
    """An 8-bit picture of one frame: grey ('L') or colour ('RGB')."""
    import numpy as np
    from PIL import Image as PILImage

    arr = pixels(ds, frame)
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip()
    if int(ds.get("SamplesPerPixel", 1) or 1) == 3 or arr.ndim == 3:
        if arr.dtype != np.uint8:
            top = float(arr.max()) or 1.0
            arr = np.clip(arr.astype(np.float64) * (255.0 / top), 0, 255)
        return PILImage.fromarray(np.ascontiguousarray(arr.astype(np.uint8)), "RGB")
    if "PALETTE" in photometric:
        from pydicom.pixels import apply_color_lut

        rgb = apply_color_lut(arr, ds)
        if rgb.dtype != np.uint8:
            rgb = rgb / 257  # 16-bit palette entries (PS3.3 C.7.6.3.1.5)
        return PILImage.fromarray(np.ascontiguousarray(rgb.astype(np.uint8)), "RGB")
    from pydicom.pixels import apply_modality_lut

    values = np.asarray(apply_modality_lut(arr, ds), dtype=np.float64)
    win = window or window_of(ds)
    if win is not None:
        # PS3.3 C.11.2.1.2.1: the linear VOI function.
        low = win.center - 0.5 - (win.width - 1) / 2
        high = win.center - 0.5 + (win.width - 1) / 2
    else:
        low, high = float(values.min()), float(values.max())
    span = (high - low) or 1.0
    grey = np.clip((values - low) * (255.0 / span), 0, 255)
    if photometric == "MONOCHROME1":
        grey = 255 - grey  # PS3.3 C.7.6.3.1.2: minimum is white
    return PILImage.fromarray(grey.astype(np.uint8), "L")


def encode(image: Image, media_type: str, quality: int = 90) -> bytes:
    """The picture as image/jpeg or image/png bytes."""
    fmt = MEDIA_TYPES.get(media_type)
    if fmt is None:
        raise NotAnImage(
            f"cannot render as {media_type}", f"ask for one of {', '.join(MEDIA_TYPES)}"
        )
    out = BytesIO()
    if fmt == "JPEG":
        image.save(out, fmt, quality=max(1, min(100, quality)))
    else:
        image.save(out, fmt)
    return out.getvalue()


def thumbnail(image: Image, width: int) -> Image:
    """The picture ``width`` pixels wide, aspect kept."""
    from PIL import Image as PILImage

    height = max(1, round(image.height * width / max(1, image.width)))
    return image.resize((width, height), PILImage.Resampling.LANCZOS)
