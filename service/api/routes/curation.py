"""The curation loop over HTTP: review decisions, corrected versions, their exports, and diffs."""

import tempfile
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse
from starlette.background import BackgroundTask

from service.api.routes.deps import EngineDep, OwnerDep, UserDep
from service.read import dataset_export, diff, queries
from service.schemas import DatasetOut, DiffOut, ErrorResponse, ReviewIn, ReviewPage, ReviewResult, VersionIn
from service.store import reviews, versions

router = APIRouter(tags=["curation"])
ERRORS = {c: {"model": ErrorResponse} for c in (401, 404, 409, 422)}


@router.post("/jobs/{job_id}/reviews", response_model=ReviewResult, responses=ERRORS)
def post_reviews(job_id: str, body: ReviewIn, engine: EngineDep, owner: OwnerDep, user: UserDep) -> ReviewResult:
    """Store decisions (relabel, keep, exclude, clear), or accept the suggested label of the top K
    flagged examples or of every flagged one at or above a mislabel score: all or none, committed
    before the answer. decided_by is the deciding key's name (local without keys)."""
    by = user or reviews.LOCAL
    if body.accept_suggested is not None:
        return engine.accept_suggested(job_id, body.accept_suggested, owner, by)
    return engine.record_decisions(job_id, body.decisions or [], owner, by)


@router.get("/jobs/{job_id}/reviews", response_model=ReviewPage, responses=ERRORS)
def get_reviews(job_id: str, engine: EngineDep, owner: OwnerDep,
                action: Literal["relabel", "keep", "exclude"] | None = None,
                limit: Annotated[int, Query(ge=1, le=100_000)] = 100,
                offset: Annotated[int, Query(ge=0, le=2**31)] = 0) -> ReviewPage:
    """The current decisions (not cleared), by example_id; limit capped at max_page_size."""
    return reviews.review_page(engine.store, job_id, action=action, limit=min(limit, engine.settings.max_page_size),
                               offset=offset, owner=owner)


@router.post("/datasets/{dataset_id}/versions", status_code=201, response_model=DatasetOut, responses=ERRORS)
def create_version(dataset_id: str, body: VersionIn, engine: EngineDep, owner: OwnerDep) -> DatasetOut:
    """A new immutable dataset with the job's decisions applied (relabels change the label, excludes drop the row)."""
    return versions.create_version(engine.store, engine.settings, dataset_id, body.from_job, owner)


@router.get("/datasets/{dataset_id}/export", responses={200: {"content": {m: {} for m in dataset_export.MEDIA.values()}},
                                                        **ERRORS})
def export_dataset(dataset_id: str, engine: EngineDep, owner: OwnerDep,
                   format: Literal["csv", "parquet", "npz", "zip"] | None = None) -> FileResponse:
    """The dataset as a file in the form it was uploaded in (or `format`)."""
    ds = queries.get_dataset(engine.store, dataset_id, owner)
    exports = engine.settings.exports_dir
    exports.mkdir(exist_ok=True)
    folder = Path(tempfile.mkdtemp(dir=exports))
    name = dataset_export.export_name(ds, format)
    try:
        path = dataset_export.export_dataset(engine.store, engine.settings, dataset_id, format, folder / name, owner)
    except BaseException:
        folder.rmdir()
        raise
    return FileResponse(path, media_type=dataset_export.MEDIA[path.suffix[1:]], filename=path.name,
                        background=BackgroundTask(lambda: (path.unlink(missing_ok=True), folder.rmdir())))


@router.get("/jobs/{job_a}/diff/{job_b}", response_model=DiffOut, responses=ERRORS)
def diff_jobs(job_a: str, job_b: str, engine: EngineDep, owner: OwnerDep) -> DiffOut:
    """Job b (on a version derived from job a's dataset) against job a, examples matched by lineage."""
    return diff.diff_jobs(engine.store, job_a, job_b, owner)
