"""/datasets: streamed upload, list, read, delete."""

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.concurrency import run_in_threadpool

from service.api.routes.deps import EngineDep, OwnerDep
from service.errors import DatasetTooLarge
from service.ingest.options import IngestOptions
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
    categorical: Annotated[list[str], Query(max_length=256, description="table columns read as categories, "
                                            "repeatable")] = [],  # noqa: B006  (FastAPI copies defaults)
    ignore: Annotated[list[str], Query(max_length=256, description="table columns left out, repeatable")] = [],  # noqa: B006
    text_column: Annotated[str | None, Query(max_length=256, description="the table column of texts")] = None,
    embedder: Annotated[str, Query(max_length=64, description="texts to features: auto | tfidf | a sentence "
                                   "embedder")] = "auto",
    features: Annotated[str | None, Query(max_length=64, description="images to features with a pretrained "
                                          "backbone, e.g. torchvision:resnet18")] = None,
    skip_unreadable: Annotated[bool, Query(description="images: leave out files that cannot be read as images "
                                           "(listed in ingest_report.images.skipped) instead of refusing")] = False,
    name: Annotated[str | None, Query(max_length=256)] = None,
) -> Response:
    """Upload a .csv, .parquet, .jsonl, .npz or .zip (image or text folder) as a raw body (?filename=)
    or multipart. The same file with the same options (label column, resize, column roles, embedder,
    features) uploaded again answers 200 with the stored dataset and `reused: true` instead of
    storing a duplicate. A weights file for `features` is the server's (its torchvision cache), never
    a path from the request."""
    settings = engine.settings
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > settings.max_upload_bytes:
        raise DatasetTooLarge(f"upload of {int(declared):,} bytes exceeds the limit of {settings.max_upload_bytes:,}")
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):  # parsed as it streams, inside the data dir
        path = await receive_multipart(request.stream(), content_type, settings, filename)
    else:
        path = await receive_upload(request.stream(), filename or "", settings)
    try:
        options = IngestOptions.parse(label_column=label_column, resize=resize, categorical=tuple(categorical),
                                      ignore=tuple(ignore), text_column=text_column, embedder=embedder,
                                      features=features, skip_unreadable=skip_unreadable)
        manifest, reused = await run_in_threadpool(engine.ingest, path, options, name=name or path.name,
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
