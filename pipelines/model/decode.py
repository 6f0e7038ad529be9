"""Validate and decode one backlog row's content: the rules every model's preprocessor shares.

Both the tiny test model and the starter model call :func:`decode_row`, so both dead-letter
exactly the same rows for the same reasons. A bad row never raises out of here: it comes
back as a :class:`RowFault` (error class + one-line message) that the preprocessor turns
into a :class:`~pipelines.model.interface.RowError`.

Rules (see docs/models.md):

- text longer than ``max_text_chars`` is rejected (``OversizedText``), never silently cut:
  a truncated violation would be scored as benign;
- a TEXT item needs non-blank text, an IMAGE item an image, a VIDEO item at least one frame
  (``EmptyContent``); other content types need text or media;
- an image is checked from its header before any pixel is decoded: zero bytes, unknown
  format, more than ``max_pixels`` pixels (decompression bombs, whatever PIL's global limit
  is) or more than ``max_image_bytes`` encoded bytes are rejected, and PIL's own bomb
  warning is treated as an error;
- every frame of a video is header-checked; at most ``max_frames`` keyframes, sampled
  uniformly, are decoded, and any broken one rejects the row (``ImageDecodeError`` naming
  the frame).
"""

from __future__ import annotations

import io
import unicodedata
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

DEFAULT_MAX_TEXT_CHARS = 100_000
DEFAULT_MAX_PIXELS = 40_000_000  # 40 Mpx: above any real photo, far below a bomb
DEFAULT_MAX_IMAGE_BYTES = 32 * 1024 * 1024
DEFAULT_MAX_FRAMES = 4


@dataclass(frozen=True)
class DecodeConfig:
    """Limits and sizes of :func:`decode_row`.

    image_size: side of the square RGB array each decoded image is resized to.
    max_frames: keyframes decoded per video, sampled uniformly over its frames.
    max_text_chars: longer text is rejected as ``OversizedText``.
    max_pixels: width x height above which an image is a ``DecompressionBombError``.
    max_image_bytes: encoded size above which an image is ``OversizedImage``.
    """

    image_size: int = 128
    max_frames: int = DEFAULT_MAX_FRAMES
    max_text_chars: int = DEFAULT_MAX_TEXT_CHARS
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_image_bytes: int = DEFAULT_MAX_IMAGE_BYTES

    def __post_init__(self) -> None:
        if not 8 <= self.image_size <= 1024:
            raise ValueError(f"image_size must be in [8, 1024], got {self.image_size}")
        if not 1 <= self.max_frames <= 64:
            raise ValueError(f"max_frames must be in [1, 64], got {self.max_frames}")
        if self.max_text_chars < 1:
            raise ValueError(f"max_text_chars must be >= 1, got {self.max_text_chars}")
        if self.max_pixels < 1:
            raise ValueError(f"max_pixels must be >= 1, got {self.max_pixels}")
        if self.max_image_bytes < 1:
            raise ValueError(f"max_image_bytes must be >= 1, got {self.max_image_bytes}")


@dataclass(frozen=True)
class RowFault:
    """Why one row cannot be used (becomes a RowError with stage "preprocess")."""

    error_class: str
    message: str


@dataclass(frozen=True)
class DecodedRow:
    """What a model may use of one row.

    text: the text, or "" when there is none (allowed for media items).
    images: uint8 arrays ``[image_size, image_size, 3]``: the image, or the sampled keyframes.
    """

    text: str
    images: list[np.ndarray]


class _Fault(Exception):
    def __init__(self, error_class: str, message: str) -> None:
        super().__init__(message)
        self.fault = RowFault(error_class, message)


def sample_frames(n_frames: int, max_frames: int) -> list[int]:
    """Indices of at most ``max_frames`` keyframes spread uniformly over ``n_frames``."""
    if n_frames <= max_frames:
        return list(range(n_frames))
    # Centres of max_frames equal segments: deterministic, first and last segments covered.
    return [int((i + 0.5) * n_frames / max_frames) for i in range(max_frames)]


def _open_checked(data: Any, cfg: DecodeConfig, what: str) -> Any:
    """Open an image lazily (header only) and enforce the size limits."""
    from PIL import Image

    if not isinstance(data, bytes | bytearray | memoryview):
        raise _Fault("ImageDecodeError", f"{what}: expected encoded image bytes, got {type(data).__name__}")
    if len(data) == 0:
        raise _Fault("EmptyImage", f"{what}: zero-byte image")
    if len(data) > cfg.max_image_bytes:
        raise _Fault("OversizedImage", f"{what}: {len(data)} encoded bytes > limit {cfg.max_image_bytes}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(bytes(data)))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise _Fault("DecompressionBombError", f"{what}: {exc}") from None
    except Image.UnidentifiedImageError:
        raise _Fault("ImageDecodeError", f"{what}: not a known image format ({len(data)} bytes)") from None
    except Exception as exc:
        raise _Fault("ImageDecodeError", f"{what}: cannot open image ({type(exc).__name__}: {exc})") from None
    w, h = im.size
    if w < 1 or h < 1:
        raise _Fault("ImageDecodeError", f"{what}: image declares size {w}x{h}")
    if w * h > cfg.max_pixels:
        raise _Fault(
            "DecompressionBombError", f"{what}: image declares {w}x{h} = {w * h} pixels > limit {cfg.max_pixels}"
        )
    return im


def _decode_pixels(im: Any, cfg: DecodeConfig, what: str) -> np.ndarray:
    """Fully decode an opened image to a square uint8 RGB array."""
    from PIL import Image

    size = cfg.image_size
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            if im.format == "JPEG":
                im.draft("RGB", (size, size))  # DCT-domain downscale: decodes far fewer pixels
            im.load()
            rgb = im.convert("RGB")
            rgb = rgb.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=2.0)
            arr = np.asarray(rgb, dtype=np.uint8)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise _Fault("DecompressionBombError", f"{what}: {exc}") from None
    except Exception as exc:
        raise _Fault("ImageDecodeError", f"{what}: corrupt or truncated image ({type(exc).__name__}: {exc})") from None
    if arr.shape != (size, size, 3):
        raise _Fault("ImageDecodeError", f"{what}: decoded to unexpected shape {arr.shape}")
    return arr


def decode_row(
    content_type: str | None, text: str | None, image: Any, frames: Any, cfg: DecodeConfig
) -> DecodedRow | RowFault:
    """Validate one row and decode its media; a bad row returns a :class:`RowFault`."""
    try:
        return _decode_row(content_type, text, image, frames, cfg)
    except _Fault as f:
        return f.fault


def _decode_row(content_type: str | None, text: str | None, image: Any, frames: Any, cfg: DecodeConfig) -> DecodedRow:
    ctype = (content_type or "").upper().removeprefix("CONTENT_TYPE_")
    if text is not None and not isinstance(text, str):
        raise _Fault("BadText", f"text must be a string, got {type(text).__name__}")
    body = text or ""
    if len(body) > cfg.max_text_chars:
        raise _Fault(
            "OversizedText",
            f"text has {len(body)} characters > limit {cfg.max_text_chars}; rows are rejected, not truncated, "
            "so that a violation past the cut is never scored as benign",
        )
    has_text = bool(body.strip())
    if has_text and not _readable(body):
        raise _Fault(
            "UnreadableText",
            "text has no readable character (only control, format, combining or U+FFFD replacement "
            "characters): it was probably mis-decoded upstream; fix the encoding and retry",
        )
    frame_list = list(frames) if frames is not None else []

    images: list[np.ndarray] = []
    if image is not None:
        images.append(_decode_pixels(_open_checked(image, cfg, "image"), cfg, "image"))
    if frame_list:
        opened = [_open_checked(f, cfg, f"frame {i}") if f is not None else None for i, f in enumerate(frame_list)]
        # A cover image takes one of the max_frames slots; at least one frame is always decoded.
        for i in sample_frames(len(opened), max(1, cfg.max_frames - len(images))):
            im = opened[i]
            if im is None:
                raise _Fault("ImageDecodeError", f"frame {i}: null frame")
            images.append(_decode_pixels(im, cfg, f"frame {i}"))

    if ctype == "TEXT" and not has_text:
        raise _Fault("EmptyContent", "TEXT item has no text (null or blank)")
    if ctype == "IMAGE" and image is None:
        raise _Fault("EmptyContent", "IMAGE item has no image")
    if ctype == "VIDEO" and not frame_list:
        raise _Fault("EmptyContent", "VIDEO item has no frames")
    if not has_text and not images:
        raise _Fault("EmptyContent", f"{ctype or 'untyped'} item has neither text nor media")
    return DecodedRow(text=body if has_text else "", images=images)


def _readable(text: str) -> bool:
    """Whether ``text`` has a letter, digit, punctuation or symbol other than U+FFFD.

    Scanning stops at the first such character, so ordinary text costs almost nothing.
    """
    return any(ch != "\ufffd" and unicodedata.category(ch)[0] in "LNPS" for ch in text)


def decode_batch(rows: dict[str, list[Any]], cfg: DecodeConfig) -> list[DecodedRow | RowFault]:
    """:func:`decode_row` over a batch given as columns; absent media columns count as null."""
    n = _batch_len(rows)
    cols = {c: _column(rows, c, n) for c in ("content_type", "text", "image", "frames")}
    return [
        decode_row(cols["content_type"][i], cols["text"][i], cols["image"][i], cols["frames"][i], cfg) for i in range(n)
    ]


def _batch_len(rows: dict[str, list[Any]]) -> int:
    lengths = {len(v) for v in rows.values() if v is not None}
    if len(lengths) > 1:
        raise ValueError(f"batch columns have different lengths: {sorted(lengths)}")
    return lengths.pop() if lengths else 0


def _column(rows: dict[str, list[Any]], name: str, n: int) -> list[Any]:
    col = rows.get(name)
    return [None] * n if col is None else list(col)
