"""/datasets: streamed upload, list, read, delete."""

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.concurrency import run_in_threadpool

from service.api.routes.deps import EngineDep, OwnerDep
from service.errors import DatasetTooLarge, InvalidDataset
from service.ingest.uploads import discard_upload, receive_multipart, receive_upload
from service.read import queries
from service.schemas import DatasetOut, ErrorResponse

router = APIRouter(tags=["datasets"])
ERRORS = {c: {"model": ErrorResponse} for c in (400, 401, 404, 409, 413, 415, 422)}


@router.post("/datasets", status_code=201, response_model=DatasetOut,
             responses={**ERRORS, 200: {"model": DatasetOut, "description": "the same upload, stored already"}},
             openapi_extra={"requestBody": {"content": {
                 "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
                 "multipart/form-data": {"schema": {"type": "object", "properties": {
                     "file": {"type": "string", "format": "binary"}}, "required": ["file"]}}}}})
async def upload_dataset(
    request: Request, engine: EngineDep, owner: OwnerDep,
    filename: Annotated[str | None, Query(description="file name with its suffix (raw uploads)")] = None,
    label_column: Annotated[str, Query(max_length=256)] = "label",
    resize: Annotated[str | None, Query(pattern=r"^\d{1,4}x\d{1,4}$", description="HxW for images")] = None,
    name: Annotated[str | None, Query(max_length=256)] = None,
) -> Response:
    """Upload a .csv, .parquet, .npz or .zip (image folder) as a raw body (?filename=) or multipart.
    The same file (sha256, label column, resize) uploaded again answers 200 with the stored dataset
    and `reused: true` instead of storing a duplicate."""
    settings = engine.settings
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > settings.max_upload_bytes:
        raise DatasetTooLarge(f"upload of {int(declared):,} bytes exceeds the limit of {settings.max_upload_bytes:,}")
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):  # parsed as it streams, inside the data dir
        path = await receive_multipart(request.stream(), content_type, settings, filename)
    else:
        path = await receive_upload(request.stream(), filename or "", settings)
    size = tuple(int(v) for v in resize.split("x")) if resize else None
    if size is not None and min(size) < 1:
        discard_upload(path)
        raise InvalidDataset(f"resize must be HxW with both sides at least 1, got {resize!r}")
    try:
        manifest, reused = await run_in_threadpool(engine.ingest, path,
                                                   name=name or path.name, label_column=label_column, resize=size,
                                                   owner=owner)
    finally:
        discard_upload(path)
    out = queries.get_dataset(engine.store, manifest.dataset_id, owner).model_copy(update={"reused": reused})
    return Response(out.model_dump_json(), status_code=200 if reused else 201, media_type="application/json")


@router.get("/datasets", response_model=list[DatasetOut], responses=ERRORS)
def list_datasets(engine: EngineDep, owner: OwnerDep) -> list[DatasetOut]:
    return queries.list_datasets(engine.store, owner)


@router.get("/datasets/{dataset_id}", response_model=DatasetOut, responses=ERRORS)
def get_dataset(dataset_id: str, engine: EngineDep, owner: OwnerDep) -> DatasetOut:
    return queries.get_dataset(engine.store, dataset_id, owner)


@router.delete("/datasets/{dataset_id}", status_code=204, responses=ERRORS)
def delete_dataset(dataset_id: str, engine: EngineDep, owner: OwnerDep, tree: bool = False) -> None:
    """Remove the dataset with its finished jobs and all their results; 409 while a job still runs on it,
    409 has_versions when versions were made from it, unless tree=true (which removes them too)."""
    engine.delete_dataset(dataset_id, owner, tree=tree)
