"""Uploads: stream a request body to `<data_dir>/uploads/<id>/<name>.partial`, enforce the size
limit while streaming, rename when complete, ingest, then delete the upload (the normalised
dataset is what is kept). A multipart body is parsed here as it streams (`receive_multipart`):
Starlette's form parser spooled the whole file to /tmp, outside the data dir, before any limit."""

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
    if len(cleaned) <= 128:
        return cleaned
    suffix = Path(cleaned).suffix[:16]  # a long name keeps its suffix, which says the format
    return cleaned[:128 - len(suffix)] + suffix


async def receive_upload(chunks: AsyncIterator[bytes], filename: str, settings: Settings) -> Path:
    """Write chunks to a new upload folder; 413 (DatasetTooLarge) past max_upload_bytes."""
    name = safe_filename(filename)  # before anything is written
    folder = settings.uploads_dir / uuid.uuid4().hex
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


MAX_FORM_FIELD_BYTES = 64 * 1024  # all parts but the file, together (they are ignored)


async def receive_multipart(chunks: AsyncIterator[bytes], content_type: str, settings: Settings,
                            fallback_name: str | None = None) -> Path:
    """The part named `file` of a multipart/form-data body, streamed into a new upload folder with
    the size limit enforced as it arrives (413 past max_upload_bytes, nothing kept)."""
    from python_multipart.multipart import MultipartParser, parse_options_header

    _, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if not boundary:
        raise InvalidDataset("multipart upload without a boundary in its Content-Type")
    folder = settings.uploads_dir / uuid.uuid4().hex
    folder.mkdir(parents=True)
    partial = folder / "upload.partial"
    part: dict[str, object] = {"field": b"", "value": b"", "headers": {}}
    found: dict[str, object] = {"name": None, "size": 0, "files": 0, "other": 0}
    try:
        with partial.open("wb") as f:
            def on_part_begin() -> None:
                part.update(field=b"", value=b"", headers={}, is_file=False)

            def on_header_field(data: bytes, start: int, end: int) -> None:
                part["field"] = part["field"] + data[start:end]  # type: ignore[operator]

            def on_header_value(data: bytes, start: int, end: int) -> None:
                part["value"] = part["value"] + data[start:end]  # type: ignore[operator]

            def on_header_end() -> None:
                part["headers"][part["field"].lower()] = part["value"]  # type: ignore[index,union-attr]
                part.update(field=b"", value=b"")

            def on_headers_finished() -> None:
                _, disposition = parse_options_header(part["headers"].get(b"content-disposition", b""))  # type: ignore[union-attr]
                if disposition.get(b"name") == b"file":
                    found["files"] = int(found["files"]) + 1  # type: ignore[call-overload]
                    if found["files"] != 1:
                        raise InvalidDataset("multipart upload has more than one field named 'file'")
                    found["name"] = disposition.get(b"filename", b"").decode("utf-8", "replace")
                    part["is_file"] = True

            def on_part_data(data: bytes, start: int, end: int) -> None:
                key = "size" if part.get("is_file") else "other"
                found[key] = int(found[key]) + end - start  # type: ignore[call-overload]
                if part.get("is_file"):
                    if int(found["size"]) > settings.max_upload_bytes:  # type: ignore[call-overload]
                        raise DatasetTooLarge(f"upload exceeds the limit of {settings.max_upload_bytes:,} bytes")
                    f.write(data[start:end])
                elif int(found["other"]) > MAX_FORM_FIELD_BYTES:  # type: ignore[call-overload]
                    raise InvalidDataset(f"multipart fields besides 'file' exceed {MAX_FORM_FIELD_BYTES:,} bytes")

            parser = MultipartParser(boundary, {
                "on_part_begin": on_part_begin, "on_header_field": on_header_field,
                "on_header_value": on_header_value, "on_header_end": on_header_end,
                "on_headers_finished": on_headers_finished, "on_part_data": on_part_data})
            async for chunk in chunks:
                parser.write(chunk)
            parser.finalize()
        if not found["files"]:
            raise InvalidDataset("multipart upload needs a file field named 'file'")
        name = safe_filename(str(found["name"] or fallback_name or ""))
        if found["size"] == 0:
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
    root = settings.uploads_dir
    if not root.exists():
        return 0
    leftovers = [p for p in root.iterdir() if p.is_dir()]
    for p in leftovers:
        shutil.rmtree(p, ignore_errors=True)
    return len(leftovers)
