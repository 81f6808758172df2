"""Photos as they come: PNG, JPEG, WebP, BMP or TIFF; grey, RGB, RGBA, palette or 16-bit; any sizes.

Two passes, so memory stays near the size of the result. The first opens each file's header only
(Pillow reads size, mode and EXIF there without decoding a pixel); from it follow the final shape
(n, C, H, W) and the report. The second decodes each image straight into its slot of one
preallocated uint8 array: no list of decoded images, no np.stack copy. A small thread pool decodes
in parallel, since Pillow releases the GIL while it decodes and resizes.

EXIF orientation is read in the first pass and applied in the second from that reading (the table
of `ImageOps.exif_transpose`), so the planned shape and the decoded one always agree: a PNG may
carry its EXIF after the pixels, where only a full decode would find it; the header pass takes
a PNG's orientation only from EXIF met before the pixels.
"""

from __future__ import annotations

import io
import os
import threading
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
from PIL import Image, UnidentifiedImageError

from service.errors import DatasetTooLarge, InvalidDataset
from service.limits import IngestLimits

PIL_FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "TIFF")  # what Image.open may read; nothing else is tried
FORMAT_NAMES = "PNG, JPEG, WebP, BMP or TIFF"
# Mixed sizes with no --resize: the median height and width, scaled down (aspect kept) until no side
# passes this. The from-scratch CNN (models/nets.py) strides its stem at 16 px and pools twice, so
# 64 px leaves a 4x4 map before its global pooling; more pixels cost time (quadratically) and memory
# on every epoch of every member without giving three 3x3 stages more to see.
MAX_DEFAULT_SIDE = 64
# With pretrained features (--features) the images go to a backbone that reads 224x224: decoded up to
# that (never enlarged), fewer pixels only where max_decoded_bytes would be passed (ingest/features.py)
FEATURES_MAX_SIDE = 224
# Threads pay where Pillow's C code dominates (decoding, resizing), not on tiny images, where its
# Python code per image holds the GIL. Measured on a 2-core box (README "Photos"): 2 threads gave
# 1.5-1.8x on 150-400 px PNGs and 1.2x on 40-160 px JPEGs, but 0.84x on 100,000 PNGs of 8-32 px.
DECODE_THREADS = 2
THREADS_FROM_PIXELS = 32 * 32  # median width x height from which the pool is used
_CHUNK = 64  # images per task handed to the pool: few futures even for 100,000 images
_GREY_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"}
_ORIENTATION_TAG = 0x0112
_TRANSPOSE = {  # EXIF orientation -> what puts the image upright (ImageOps.exif_transpose's table)
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, zlib.error)

OpenFile = Callable[[str], BinaryIO]  # relative path -> an open stream of its bytes (the caller closes it)
ReadFile = Callable[[str], bytes]  # relative path -> all of its bytes


@dataclass(frozen=True)
class Header:
    """One image as its header describes it, before any pixel is decoded."""

    width: int  # as stored
    height: int
    mode: str  # Pillow's mode as stored: "RGB", "L", "P", "I;16", ...
    format: str  # "PNG", "JPEG", "MPO" (a camera's JPEG), "WEBP", "BMP", "TIFF"
    transpose: Image.Transpose | None  # from the EXIF orientation; None: already upright

    @property
    def swaps(self) -> bool:  # the orientation turns it by 90 degrees: height and width trade places
        return self.transpose in (Image.Transpose.TRANSPOSE, Image.Transpose.TRANSVERSE,
                                  Image.Transpose.ROTATE_90, Image.Transpose.ROTATE_270)

    @property
    def upright(self) -> tuple[int, int]:  # (height, width) once the orientation is applied
        return (self.width, self.height) if self.swaps else (self.height, self.width)

    @property
    def is_colour(self) -> bool:
        return self.mode not in _GREY_MODES  # palette images count as colour, as they decode to RGB


@dataclass(frozen=True)
class Plan:
    """The shape every image is decoded to, and why; `report` goes to LoadedDataset.report["images"]."""

    size: tuple[int, int]  # (H, W)
    n_channels: int  # 1 (all grey) or 3
    report: dict[str, object]


@contextmanager
def reading(name: str, rel: str) -> Iterator[None]:
    """Turn any failure to read `rel` into an error that names the dataset and the file."""
    try:
        yield
    except UnidentifiedImageError as e:
        raise InvalidDataset(f"{name}: cannot read image {rel!r} (not a {FORMAT_NAMES} file)") from e
    except Image.DecompressionBombError as e:
        raise DatasetTooLarge(f"{name}: image {rel!r} is too large ({e})") from e
    except _DECODE_ERRORS as e:
        raise InvalidDataset(f"{name}: cannot read image {rel!r} ({e})") from e


def read_headers(name: str, rels: list[str], open_file: OpenFile, limits: IngestLimits) -> list[Header]:
    """Each image's header, in order; refuses one over max_image_pixels before decoding it."""
    headers = []
    for rel in rels:
        with reading(name, rel), open_file(rel) as f:
            img = Image.open(f, formats=PIL_FORMATS)
            w, h = img.size
            if w * h > limits.max_image_pixels:
                raise DatasetTooLarge(
                    f"{name}: image {rel!r} is {w}x{h} = {w * h:,} pixels; the limit is "
                    f"{limits.max_image_pixels:,} pixels per image (max_image_pixels)"
                )
            if 4 * w * h > limits.max_decoded_bytes:
                raise DatasetTooLarge(
                    f"{name}: decoding {rel!r} ({w}x{h}) would exceed the limit of "
                    f"{limits.max_decoded_bytes:,} bytes of pixels (max_decoded_bytes)"
                )
            headers.append(Header(w, h, img.mode, img.format or "?", _TRANSPOSE.get(_orientation(img))))
    return headers


def _orientation(img: Image.Image) -> int:
    if img.format == "TIFF":
        return 1  # Pillow's TIFF reader turns the image itself while loading, and its size is upright already
    if img.format == "PNG" and "exif" not in img.info:
        return 1  # PNG's getexif() would decode the whole image to look past the pixels
    value = img.getexif().get(_ORIENTATION_TAG, 1)
    return value if isinstance(value, int) else 1


def plan_images(
    name: str, rels: list[str], headers: list[Header], resize: tuple[int, int] | None, limits: IngestLimits,
    for_features: bool = False,
) -> Plan:
    """The final (H, W) and channels: `resize` if given, else the common size, else the median size
    capped at MAX_DEFAULT_SIDE; 3 channels when any image is in colour. Refuses a total over
    max_decoded_bytes, naming the first image that would pass it. `for_features` (a pretrained
    backbone reads them): the median capped at FEATURES_MAX_SIDE instead, also for one common size,
    and lower where the whole set would pass max_decoded_bytes."""
    sizes = np.array([h.upright for h in headers], dtype=np.int64)  # (n, 2) height, width
    median = np.rint(np.median(sizes, axis=0)).astype(np.int64)
    lo, hi = sizes.min(axis=0), sizes.max(axis=0)
    n_sizes = len({tuple(s) for s in sizes.tolist()})
    n_colour = sum(h.is_colour for h in headers)
    if resize is not None:
        size, resized_to, why = resize, list(resize), f"resize {resize[0]}x{resize[1]} was asked for"
    elif for_features:
        size, why = _features_size(median, n_sizes, len(headers) * (3 if n_colour else 1), limits)
        resized_to = None if n_sizes == 1 and size == (int(lo[0]), int(lo[1])) else list(size)
    elif n_sizes == 1:
        size, resized_to, why = (int(lo[0]), int(lo[1])), None, f"all images are {lo[0]}x{lo[1]}; kept as they are"
    else:
        scale = min(1.0, MAX_DEFAULT_SIDE / float(median.max()))
        size = (max(1, round(median[0] * scale)), max(1, round(median[1] * scale)))
        resized_to = list(size)
        capped = f", scaled to {size[0]}x{size[1]} to keep each side within {MAX_DEFAULT_SIDE} px" if scale < 1 else ""
        why = (f"images come in {n_sizes} sizes (height x width from {lo[0]}x{lo[1]} to {hi[0]}x{hi[1]}): "
               f"all resized to the median {median[0]}x{median[1]}{capped}; --resize HxW sets another size")
    n_channels = 3 if n_colour else 1
    _check_total(name, rels, headers, size, n_channels, limits)
    channels_why = ("all images are grey" if not n_colour else "all images are in colour" if n_colour == len(headers)
                    else f"{n_colour} of {len(headers)} images are in colour: the grey ones are converted to RGB")
    report: dict[str, object] = {
        "n_images": len(headers),
        "sizes": {"min": lo.tolist(), "median": median.tolist(), "max": hi.tolist()},
        "resized_to": resized_to,
        "why": why,
        "channels": n_channels,
        "channels_why": channels_why,
        "modes": dict(sorted(Counter(h.mode for h in headers).items())),
        "formats": dict(sorted(Counter(h.format for h in headers).items())),
        "oriented_by_exif": sum(h.transpose is not None for h in headers),
    }
    return Plan(size=(int(size[0]), int(size[1])), n_channels=n_channels, report=report)


def _features_size(median: np.ndarray, n_sizes: int, n_planes: int,
                   limits: IngestLimits) -> tuple[tuple[int, int], str]:
    """The (H, W) for a pretrained backbone: the median, scaled down (aspect kept, never up) until no
    side passes FEATURES_MAX_SIDE and all n_planes (images x channels) fit in max_decoded_bytes."""
    h, w = int(median[0]), int(median[1])
    scale = min(1.0, FEATURES_MAX_SIDE / max(h, w))
    budget = (limits.max_decoded_bytes / (n_planes * h * w)) ** 0.5  # the scale that fills the budget
    fitted = budget < scale
    scale = min(scale, budget)
    size = (max(1, int(h * scale)), max(1, int(w * scale)))
    found = f"images come in {n_sizes} sizes, median {h}x{w}" if n_sizes > 1 else f"all images are {h}x{w}"
    if size == (h, w):
        done = "kept as they are" if n_sizes == 1 else f"all resized to the median {h}x{w}"
        return size, f"{found}: {done} for the pretrained backbone (it resizes to its input itself)"
    why = (f"{found}: all resized to {size[0]}x{size[1]} for the pretrained backbone (each side within "
           f"{FEATURES_MAX_SIDE} px, its input)")
    if fitted:
        why += f", smaller to fit max_decoded_bytes ({limits.max_decoded_bytes:,} bytes for all images)"
    return size, why + "; --resize HxW sets another size"


def _check_total(name: str, rels: list[str], headers: list[Header], size: tuple[int, int], n_channels: int,
                 limits: IngestLimits) -> None:
    per_image = n_channels * size[0] * size[1]
    if len(rels) * per_image <= limits.max_decoded_bytes:
        return
    first_over = min(limits.max_decoded_bytes // per_image, len(rels) - 1)
    h = headers[first_over]
    raise DatasetTooLarge(
        f"{name}: decoding {rels[first_over]!r} ({h.width}x{h.height}) would exceed the limit of "
        f"{limits.max_decoded_bytes:,} bytes of pixels (max_decoded_bytes): {len(rels):,} images at "
        f"{n_channels}x{size[0]}x{size[1]} take {len(rels) * per_image:,} bytes; use fewer or smaller images, "
        "or a smaller resize"
    )


def decode_images(
    name: str, rels: list[str], headers: list[Header], read: ReadFile, plan: Plan, threads: int | None = None,
    unreadable: dict[int, str] | None = None,
) -> np.ndarray:  # (n, C, H, W) uint8
    """Decode every image into one preallocated array, in chunks on `threads` threads. On a failure
    the first failing image in example order is named, whatever order the threads ran in: chunks
    before it run to their end, those past it stop. With `unreadable` (skip mode) an image that
    cannot be read is not an error: its index and the reason go into that dict, its row is left
    as it is (the caller drops it), and decoding goes on."""
    threads = default_threads(headers) if threads is None else threads
    X = np.empty((len(rels), plan.n_channels, *plan.size), dtype=np.uint8)
    first_failure = [len(rels)]  # the lowest index that failed so far: images past it are skipped
    lock = threading.Lock()

    def decode_chunk(start: int, stop: int) -> None:
        for i in range(start, stop):
            if i > first_failure[0]:
                return
            try:
                with reading(name, rels[i]):
                    _decode_into(X, i, read(rels[i]), headers[i], plan)
            except InvalidDataset as e:
                if unreadable is None or isinstance(e, DatasetTooLarge):  # a limit is never skipped
                    with lock:
                        first_failure[0] = min(first_failure[0], i)
                    raise
                with lock:
                    unreadable[i] = str(e)
            except BaseException:
                with lock:
                    first_failure[0] = min(first_failure[0], i)
                raise

    if threads <= 1 or len(rels) <= _CHUNK:
        decode_chunk(0, len(rels))
        return X
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="decode") as pool:
        futures: list[Future[None]] = [pool.submit(decode_chunk, s, min(s + _CHUNK, len(rels)))
                                       for s in range(0, len(rels), _CHUNK)]
        try:
            for future in futures:
                future.result()
        except BaseException:
            for future in futures:
                future.cancel()
            raise
    return X


def _decode_into(X: np.ndarray, i: int, data: bytes, header: Header, plan: Plan) -> None:
    img = Image.open(io.BytesIO(data), formats=PIL_FORMATS)
    h, w = plan.size
    if img.format in ("JPEG", "MPO") and (h, w) != header.upright:  # let libjpeg scale by 1/2..1/8 while decoding
        img.draft(None, (h, w) if header.swaps else (w, h))  # (width, height) as stored
    img.load()
    if header.transpose is not None:
        img = img.transpose(header.transpose)
    img = grey_or_rgb(img)
    if img.size != (w, h):
        img = img.resize((w, h), Image.Resampling.BILINEAR)
    arr = np.asarray(img, dtype=np.uint8)
    X[i] = arr.transpose(2, 0, 1) if arr.ndim == 3 else arr  # a grey image fills all 3 channels if needed


def grey_or_rgb(img: Image.Image) -> Image.Image:
    """Mode 'L' or 'RGB'. Transparent pixels are composited over black (RGBA, LA, and palette images
    with a transparent entry); 16-bit grey is scaled to 8 bits (65535 -> 255, 32768 -> 128);
    32-bit integer grey is read on the 16-bit scale, float grey on the 8-bit one, both clipped."""
    mode = img.mode
    if mode in ("L", "RGB"):
        return img
    if mode == "1":
        return img.convert("L")
    if mode.startswith("I"):
        scaled = np.rint(np.asarray(img, dtype=np.float64) / 257.0)
        return Image.fromarray(np.clip(scaled, 0, 255).astype(np.uint8))
    if mode == "F":
        return Image.fromarray(np.clip(np.rint(np.asarray(img, dtype=np.float64)), 0, 255).astype(np.uint8))
    if mode in ("LA", "La"):
        return _over_black(img.convert("RGBA")).convert("L")
    if "A" in mode or "a" in mode or (mode == "P" and "transparency" in img.info):
        return _over_black(img.convert("RGBA"))
    return img.convert("RGB")  # P, CMYK, YCbCr, ...


def _over_black(rgba: Image.Image) -> Image.Image:
    black = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
    return Image.alpha_composite(black, rgba).convert("RGB")


def default_threads(headers: list[Header]) -> int:
    """DECODE_THREADS (at most the CPUs) for images of THREADS_FROM_PIXELS or more, else 1."""
    median_pixels = float(np.median([h.width * h.height for h in headers])) if headers else 0.0
    return max(1, min(DECODE_THREADS, os.cpu_count() or 1)) if median_pixels >= THREADS_FROM_PIXELS else 1
