"""Uploads: stream a request body to `<data_dir>/uploads/<id>/<name>.partial`, enforce the size
limit while streaming, rename when complete, ingest, then delete the upload (the normalised
dataset is what is kept)."""

import re
import shutil
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

from service.errors import DatasetTooLarge, InvalidDataset
from service.settings import Settings

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_filename(name: str | None) -> str:
    """The base name of a client's file name with only safe characters (never a path)."""
    base = Path((name or "").replace("\\", "/")).name
    cleaned = _SAFE.sub("_", base).lstrip(".")
    if not cleaned:
        raise InvalidDataset("the upload needs a file name with a suffix (.csv, .parquet, .npz or .zip)")
    return cleaned[:128]


async def receive_upload(chunks: AsyncIterator[bytes], filename: str, settings: Settings) -> Path:
    """Write chunks to a new upload folder; 413 (DatasetTooLarge) past max_upload_bytes."""
    name = safe_filename(filename)  # before anything is written
    folder = settings.data_dir / "uploads" / uuid.uuid4().hex
    folder.mkdir(parents=True)
    partial = folder / (name + ".partial")
    size = 0
    try:
        with partial.open("wb") as f:
            async for chunk in chunks:
                size += len(chunk)
                if size > settings.max_upload_bytes:
                    raise DatasetTooLarge(f"{name}: upload exceeds the limit of "
                                          f"{settings.max_upload_bytes:,} bytes")
                f.write(chunk)
        if size == 0:
            raise InvalidDataset(f"{name}: the upload is empty")
        final = folder / name
        partial.rename(final)
        return final
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise


def discard_upload(path: Path) -> None:
    shutil.rmtree(path.parent, ignore_errors=True)


def clean_partial_uploads(settings: Settings) -> int:
    """At start-up: every upload folder is a leftover (uploads are deleted once ingested)."""
    root = settings.data_dir / "uploads"
    if not root.exists():
        return 0
    leftovers = [p for p in root.iterdir() if p.is_dir()]
    for p in leftovers:
        shutil.rmtree(p, ignore_errors=True)
    return len(leftovers)
