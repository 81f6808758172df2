"""Image datasets: a folder (or zip) with one subfolder per class, and image arrays from NPZ files.

Zip members are read in memory, never extracted. Before any member is read the whole archive is
checked: no entry may escape the root (zip-slip), the declared sizes must fit the limits, and no
entry may expand more than `max_compression_ratio` times (zip bomb). Reads are then capped at each
entry's declared size. Decoding (formats, modes, sizes, EXIF orientation) is photos.py's.
"""

from __future__ import annotations

import os
import stat
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image

from service.errors import DatasetTooLarge, InvalidDataset
from service.ingest.options import IngestOptions
from service.ingest.photos import FORMAT_NAMES, OpenFile, ReadFile, decode_images, plan_images, read_headers
from service.limits import IngestLimits

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
_IGNORED_NAMES = {"__MACOSX", "Thumbs.db", "desktop.ini"}
MAX_SKIPPED_LISTED = 20  # skip_unreadable: the files left out named in the report; more are counted
SKIP_HINT = "--skip-unreadable (skip_unreadable=true over HTTP) leaves such files out and lists them"
_ZIP_READ_ERRORS = (zipfile.BadZipFile, RuntimeError, NotImplementedError, zlib.error, EOFError, OSError)
_TABLE_OPTIONS = (("label_column", "--label-column"), ("categorical", "--categorical"), ("ignore", "--ignore"),
                  ("text_column", "--text-column"), ("embedder", "--embedder"))


@dataclass(frozen=True, eq=False)
class ImageExamples:
    X: np.ndarray  # (n, C, H, W) uint8, C in {1, 3}
    y: np.ndarray  # (n,) int64, index into class_names
    class_names: list[str]  # sorted folder names
    sources: list[str]  # (n,) path relative to the dataset root, e.g. "cat/001.png"
    report: dict[str, object] = field(default_factory=dict)  # photos.plan_images: sizes, resize and why, modes


def load_image_folder(root: Path, options: IngestOptions, limits: IngestLimits) -> ImageExamples:
    """Read `root/<class>/**/<image>`; classes sorted by name, files by relative path."""
    _refuse_table_options(root.name, options)
    files, top_dirs = _walk_folder(root, limits)

    def open_file(rel: str) -> BinaryIO:
        return open(root / rel, "rb")  # noqa: SIM115  (the caller closes it)

    def read(rel: str) -> bytes:
        return (root / rel).read_bytes()

    return _load_examples(root.name, files, top_dirs, open_file, read, options, limits)


def load_image_zip(path: Path, options: IngestOptions, limits: IngestLimits) -> ImageExamples:
    """Like `load_image_folder` for a zip; a single top-level folder wrapping the class folders is unwrapped."""
    name = path.name
    _refuse_table_options(name, options)
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            check_archive(name, infos, limits, check_ratio=True)
            members, top_dirs = _zip_layout(name, infos)

            def open_file(rel: str) -> BinaryIO:  # the header pass reads a few KB of each entry
                try:
                    return zf.open(members[rel])  # type: ignore[return-value]
                except _ZIP_READ_ERRORS as e:
                    raise InvalidDataset(f"{name}: cannot read entry {members[rel].filename!r} ({e})") from e

            def read(rel: str) -> bytes:
                return _read_member(name, zf, members[rel])

            return _load_examples(name, list(members), top_dirs, open_file, read, options, limits)
    except zipfile.BadZipFile as e:
        raise InvalidDataset(f"{name}: not a valid zip archive ({e})") from e
    except OSError as e:
        raise InvalidDataset(f"{name}: cannot open the archive ({e})") from e


def _refuse_table_options(name: str, options: IngestOptions) -> None:
    defaults = IngestOptions()
    for option, flag in _TABLE_OPTIONS:
        if getattr(options, option) != getattr(defaults, option):
            raise InvalidDataset(f"{name}: {flag} does not apply to a folder or zip of images (an image dataset: "
                                 "its class folders are the labels)")


def check_archive(name: str, infos: list[zipfile.ZipInfo], limits: IngestLimits, *, check_ratio: bool) -> None:
    """Reject the whole archive if any entry is unsafe or the declared sizes exceed `limits`."""
    for info in infos:
        _entry_parts(name, info)
    if len(infos) > limits.max_files:
        raise DatasetTooLarge(f"{name}: {len(infos):,} entries; the limit is {limits.max_files:,} files")
    total = sum(info.file_size for info in infos)
    if total > limits.max_archive_bytes:
        raise DatasetTooLarge(
            f"{name}: uncompressed size {total:,} bytes exceeds the limit of {limits.max_archive_bytes:,} bytes"
        )
    if not check_ratio:
        return
    for info in infos:
        ratio = info.file_size / max(info.compress_size, 1)
        if ratio > limits.max_compression_ratio:
            raise DatasetTooLarge(
                f"{name}: entry {info.filename!r} expands {ratio:.0f}x ({info.compress_size:,} -> "
                f"{info.file_size:,} bytes); the limit is {limits.max_compression_ratio:g}x (possible zip bomb)"
            )


def images_from_array(
    name: str, X: np.ndarray, resize: tuple[int, int] | None, limits: IngestLimits
) -> np.ndarray:
    """(n, H, W), (n, C, H, W) or (n, H, W, C) with C in {1, 3} -> (n, C, H, W) uint8.

    Channels-first wins when both readings fit. uint8 is kept; other integers and bools (as 0/255)
    must lie in 0..255; floats are scaled by 255 when every value lies in [0, 1], else must lie in
    [0, 255]; floats are rounded to the nearest integer.
    """
    if X.ndim == 3:
        X = X[:, None]
    elif X.shape[1] not in (1, 3):
        if X.shape[3] not in (1, 3):
            raise InvalidDataset(
                f"{name}: X has shape {X.shape}; 4-D image arrays need 1 or 3 channels, "
                "as (n, C, H, W) or (n, H, W, C)"
            )
        X = X.transpose(0, 3, 1, 2)
    if X.shape[2] == 0 or X.shape[3] == 0:
        raise InvalidDataset(f"{name}: X has shape {X.shape}; images must be at least 1x1")
    if resize is not None and len(X) * X.shape[1] * resize[0] * resize[1] > limits.max_decoded_bytes:
        raise DatasetTooLarge(
            f"{name}: resizing to {resize[0]}x{resize[1]} would exceed the limit of "
            f"{limits.max_decoded_bytes:,} bytes of pixels"
        )
    X = _to_uint8(name, X)
    if resize is not None:
        X = _resize_array(X, resize)
    return np.ascontiguousarray(X)


# --- listing -------------------------------------------------------------------------------------


def _is_ignored(part: str) -> bool:
    return part.startswith(".") or part in _IGNORED_NAMES


def _walk_folder(root: Path, limits: IngestLimits) -> tuple[list[str], set[str]]:
    """Relative posix paths of the files under root (hidden ones skipped), and its top-level folders."""

    def fail(e: OSError) -> None:
        raise InvalidDataset(f"{root.name}: cannot list {e.filename!r} ({e.strerror})")

    files: list[str] = []
    top_dirs: set[str] = set()
    n_seen = 0
    for dirpath, dirnames, filenames in os.walk(root, onerror=fail):
        dirnames[:] = [d for d in dirnames if not _is_ignored(d)]
        rel_dir = Path(dirpath).relative_to(root)
        if rel_dir == Path("."):
            top_dirs.update(dirnames)
        n_seen += len(filenames)
        if n_seen > limits.max_files:
            limit = limits.max_files
            raise DatasetTooLarge(f"{root.name}: more than {limit:,} files; the limit is {limit:,}")
        files.extend((rel_dir / f).as_posix() for f in filenames if not _is_ignored(f))
    return files, top_dirs


def _entry_parts(name: str, info: zipfile.ZipInfo) -> tuple[str, ...]:
    raw = info.filename.replace("\\", "/")
    parts = tuple(p for p in raw.split("/") if p not in ("", "."))
    is_link = stat.S_ISLNK(info.external_attr >> 16)
    if raw.startswith("/") or (len(raw) > 1 and raw[1] == ":") or ".." in parts or is_link:
        what = "is a symbolic link" if is_link else "points outside the archive root"
        raise InvalidDataset(f"{name}: unsafe entry {info.filename!r} ({what}); the archive is rejected")
    return parts


def _zip_layout(name: str, infos: list[zipfile.ZipInfo]) -> tuple[dict[str, zipfile.ZipInfo], set[str]]:
    """Map each file's path relative to the dataset root to its entry; also the top-level folders."""
    entries = [(parts, info) for info in infos if (parts := _entry_parts(name, info))]
    entries = [(parts, info) for parts, info in entries if not any(_is_ignored(p) for p in parts)]
    if len({parts[0] for parts, _ in entries}) == 1:  # one top-level name: unwrap it if it holds folders
        inner = [(parts[1:], info) for parts, info in entries if len(parts) > 1]
        wraps = all(len(parts) > 1 or info.is_dir() for parts, info in entries)
        if wraps and any(len(parts) > 1 or info.is_dir() for parts, info in inner):
            entries = inner
    members: dict[str, zipfile.ZipInfo] = {}
    top_dirs = {parts[0] for parts, info in entries if len(parts) > 1 or info.is_dir()}
    for parts, info in entries:
        if info.is_dir():
            continue
        rel = "/".join(parts)
        if rel in members:
            raise InvalidDataset(f"{name}: entry {info.filename!r} appears more than once")
        members[rel] = info
    return members, top_dirs


def _read_member(name: str, zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    try:
        with zf.open(info) as f:
            data = f.read(info.file_size + 1)  # never more than declared (+1 to notice a lie)
    except _ZIP_READ_ERRORS as e:
        raise InvalidDataset(f"{name}: cannot read entry {info.filename!r} ({e})") from e
    if len(data) > info.file_size:
        raise DatasetTooLarge(
            f"{name}: entry {info.filename!r} holds more than its declared {info.file_size:,} bytes"
        )
    return data


def _plan(name: str, files: list[str], top_dirs: set[str],
          skipped: list[tuple[str, str]] | None = None) -> tuple[list[str], list[tuple[int, str]]]:
    """Class names and (class index, relative path) per example, in example order. With `skipped`
    (skip mode) a file in a class folder without an image suffix goes there (path, why) instead of
    failing the upload."""
    class_names = sorted(top_dirs)
    if not class_names:
        if files:
            raise InvalidDataset(
                f"{name}: found files but no class subfolders; put each class's images in its own "
                f"subfolder, e.g. {name}/cat/001.png"
            )
        raise InvalidDataset(f"{name}: no images found (it is empty)")
    per_class: dict[str, list[str]] = {c: [] for c in class_names}
    for rel in files:
        parts = rel.split("/")
        is_image = rel.lower().endswith(IMAGE_SUFFIXES)
        if len(parts) == 1:
            if is_image:
                raise InvalidDataset(f"{name}: image {rel!r} is not inside a class subfolder")
            continue  # a README or similar next to the class folders
        if not is_image:
            why = f"{name}: {rel!r} is not a {FORMAT_NAMES} image (supported: {' '.join(IMAGE_SUFFIXES)})"
            if skipped is None:
                raise InvalidDataset(f"{why}; {SKIP_HINT}")
            skipped.append((rel, why))
            continue
        per_class[parts[0]].append(rel)
    examples = [(i, rel) for i, c in enumerate(class_names) for rel in sorted(per_class[c])]
    if not examples:
        raise InvalidDataset(f"{name}: no images found in the class folders {', '.join(map(repr, class_names))}")
    return class_names, examples


# --- decoding ------------------------------------------------------------------------------------


def _load_examples(
    name: str,
    files: list[str],
    top_dirs: set[str],
    open_file: OpenFile,
    read: ReadFile,
    options: IngestOptions,
    limits: IngestLimits,
) -> ImageExamples:
    """Headers first (the final shape and the report), then every image decoded into its slot; for
    pretrained features (options.features) at the backbone's size rather than the small CNN's.
    options.skip_unreadable: files that cannot be read as images are left out and listed in the
    report (`skipped`), so one corrupt file among thousands does not fail the upload."""
    if not options.skip_unreadable:
        class_names, examples = _plan(name, files, top_dirs)
        sources = [rel for _, rel in examples]
        try:
            headers = read_headers(name, sources, open_file, limits)
            plan = plan_images(name, sources, headers, options.resize, limits,
                               for_features=options.features is not None)
            X = decode_images(name, sources, headers, read, plan)
        except DatasetTooLarge:
            raise  # a limit, not an unreadable file: the option would not help
        except InvalidDataset as e:
            raise InvalidDataset(f"{e}; {SKIP_HINT}") from e
        y = np.array([c for c, _ in examples], dtype=np.int64)
        return ImageExamples(X=X, y=y, class_names=class_names, sources=sources, report=plan.report)
    skipped: list[tuple[str, str]] = []
    class_names, examples = _plan(name, files, top_dirs, skipped)
    readable, headers = [], []
    for c, rel in examples:
        try:
            headers += read_headers(name, [rel], open_file, limits)
            readable.append((c, rel))
        except DatasetTooLarge:
            raise  # a limit holds in skip mode too
        except InvalidDataset as e:
            skipped.append((rel, str(e)))
    if not readable:
        raise InvalidDataset(f"{name}: no readable images (all {len(examples)} left out; the first: {skipped[0][1]})")
    sources = [rel for _, rel in readable]
    plan = plan_images(name, sources, headers, options.resize, limits, for_features=options.features is not None)
    unreadable: dict[int, str] = {}
    X = decode_images(name, sources, headers, read, plan, unreadable=unreadable)
    if unreadable:  # failed while decoding, past a readable header (a truncated file, say)
        keep = np.array([i not in unreadable for i in range(len(sources))])
        skipped += [(sources[i], why) for i, why in sorted(unreadable.items())]
        X, readable = X[keep], [e for e, k in zip(readable, keep) if k]
        sources = [rel for _, rel in readable]
    y = np.array([c for c, _ in readable], dtype=np.int64)
    empty = [c for i, c in enumerate(class_names) if not (y == i).any()]
    if empty:
        raise InvalidDataset(f"{name}: class {empty[0]!r} has no readable image; the first left out: "
                             f"{next((why for rel, why in skipped if rel.split('/')[0] == empty[0]), 'none (the folder is empty)')}")
    report = {**plan.report, "n_images": len(sources),
              "skipped": {"n": len(skipped), "files": [{"file": rel, "why": why} for rel, why in skipped[:MAX_SKIPPED_LISTED]]}}
    return ImageExamples(X=X, y=y, class_names=class_names, sources=sources, report=report)


# --- arrays --------------------------------------------------------------------------------------


def _to_uint8(name: str, X: np.ndarray) -> np.ndarray:  # (n, C, H, W) any numeric -> uint8
    if X.dtype == np.uint8:
        return X
    if X.dtype == np.bool_:
        return X.astype(np.uint8) * 255
    if X.dtype.kind not in "iuf":
        raise InvalidDataset(
            f"{name}: X has dtype {X.dtype}; images must be uint8, integers in 0..255 or floats in [0, 1] or [0, 255]"
        )
    flat = X.reshape(len(X), -1)
    if X.dtype.kind == "f":
        bad = ~np.isfinite(flat).all(axis=1)
        if bad.any():
            raise InvalidDataset(f"{name}: index {int(np.argmax(bad))} has a NaN or infinite pixel value")
    bad = ((flat < 0) | (flat > 255)).any(axis=1)
    if bad.any():
        i = int(np.argmax(bad))
        value = flat[i][(flat[i] < 0) | (flat[i] > 255)][0]
        raise InvalidDataset(f"{name}: index {i} has pixel value {value}; image values must lie in 0..255")
    scale = 255.0 if X.dtype.kind == "f" and X.max() <= 1.0 else 1.0
    return np.rint(X * scale).astype(np.uint8) if X.dtype.kind == "f" else X.astype(np.uint8)


def _resize_array(X: np.ndarray, resize: tuple[int, int]) -> np.ndarray:  # (n, C, H, W) -> (n, C, *resize)
    h, w = resize
    out = np.empty((len(X), X.shape[1], h, w), dtype=np.uint8)
    for i, x in enumerate(X):
        img = Image.fromarray(x[0] if x.shape[0] == 1 else x.transpose(1, 2, 0))
        arr = np.asarray(img.resize((w, h), Image.Resampling.BILINEAR))
        out[i] = arr.transpose(2, 0, 1) if arr.ndim == 3 else arr
    return out
