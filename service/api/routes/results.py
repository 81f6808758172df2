"""Read endpoints of a finished job: examples, suspected mislabels, dynamics, AdaBoost, exports."""

import tempfile
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, Response
from starlette.background import BackgroundTask

from service.api.routes.deps import EngineDep, OwnerDep
from service.app_info import VERSION
from service.engine.engine import Engine
from service.engine.explain import explain_example
from service.read import queries
from service.read.exports import write_table
from service.schemas import AdaBoostOut, AttributionOut, DynamicsOut, ErrorResponse, ExamplePage, Health
from service.vocab import AttributionMethod as Method
from service.vocab import AttributionTarget as Target
from service.vocab import ExportFormat, ExportKind, Order, Split

router = APIRouter(tags=["results"])
ERRORS = {c: {"model": ErrorResponse} for c in (401, 404, 409, 422)}
MEDIA = {"csv": "text/csv", "parquet": "application/vnd.apache.parquet", "jsonl": "application/x-ndjson"}

async def serve_json(read: Callable[..., bytes | None]) -> Response:
    """JSON that a queries.*_json function rendered: a succeeded job's answer in memory right here
    on the event loop (no thread hand-off), anything that needs DuckDB in a worker thread."""
    content = read(memory_only=True)
    if content is None:
        content = await run_in_threadpool(read)
    return Response(content, media_type="application/json")


def _page(engine: Engine, owner: str | None, job_id: str, split: str | None, suspected: bool, order: str,
          limit: int, offset: int, filters: queries.RowFilter) -> Callable[..., bytes | None]:
    return partial(queries.example_page_json, engine.store, engine.cache, job_id, owner=owner, split=split,
                   suspected_only=suspected, order=order, limit=min(limit, engine.settings.max_page_size),
                   offset=offset, filters=filters)


GivenLabel = Annotated[str | None, Query(max_length=256, description="only this given label (class name)")]
SuggestedLabel = Annotated[str | None, Query(max_length=256, description="only this suggested label")]
Decision = Literal["none", "relabel", "keep", "exclude"]  # queries.DECISION_FILTERS


@router.get("/health", response_model=Health)
async def health() -> Health:
    return Health(status="ok", version=VERSION)


@router.get("/jobs/{job_id}/examples", response_model=ExamplePage, responses=ERRORS)
async def list_examples(job_id: str, engine: EngineDep, owner: OwnerDep, split: Split | None = None,
                        order: Order = "example_id", limit: Annotated[int, Query(ge=1, le=100_000)] = 100,
                        offset: Annotated[int, Query(ge=0, le=2**31)] = 0, given_label: GivenLabel = None,
                        suggested_label: SuggestedLabel = None, decision: Decision | None = None) -> Response:
    """Per-example scores, paginated (limit is capped at the server's max_page_size); optionally only one
    given label, one suggested label, or one decision state (none = not decided)."""
    filters = queries.RowFilter(given_label, suggested_label, decision)
    return await serve_json(_page(engine, owner, job_id, split, False, order, limit, offset, filters))


@router.get("/jobs/{job_id}/mislabeled", response_model=ExamplePage, responses=ERRORS)
async def list_mislabeled(job_id: str, engine: EngineDep, owner: OwnerDep,
                          limit: Annotated[int, Query(ge=1, le=100_000)] = 100,
                          offset: Annotated[int, Query(ge=0, le=2**31)] = 0, given_label: GivenLabel = None,
                          suggested_label: SuggestedLabel = None, decision: Decision | None = None) -> Response:
    """Suspected mislabels, worst first, with the suggested label (filters as /examples)."""
    filters = queries.RowFilter(given_label, suggested_label, decision)
    return await serve_json(_page(engine, owner, job_id, None, True, "mislabel_score", limit, offset, filters))


@router.get("/jobs/{job_id}/dynamics", response_model=DynamicsOut, responses=ERRORS)
async def get_dynamics(job_id: str, engine: EngineDep, owner: OwnerDep,
                       n_bins: Annotated[int, Query(ge=2, le=100)] = 20) -> Response:
    """Per-epoch histograms of consistency and consensus over all examples."""
    return await serve_json(partial(queries.dynamics_json, engine.store, engine.cache, job_id, n_bins, owner))


@router.get("/jobs/{job_id}/adaboost", response_model=AdaBoostOut, responses=ERRORS)
async def get_adaboost(job_id: str, engine: EngineDep, owner: OwnerDep) -> Response:
    """AdaBoost accuracy per easy/intermediate/hard group against the number of weak learners,
    its correlation with the ensemble's difficulty, and the family-agreement counts."""
    return await serve_json(partial(queries.adaboost_json, engine.store, engine.cache, job_id, owner))


@router.get("/jobs/{job_id}/examples/{example_id}/attribution", response_model=AttributionOut, responses=ERRORS)
def get_attribution(job_id: str, example_id: Annotated[int, PathParam(ge=0, le=2**31 - 1)], engine: EngineDep,
                    owner: OwnerDep, method: Method = "bias", target: Target = "given") -> AttributionOut:
    """Attribution of the ensemble's logit for the given or suggested label (mean over members, w.r.t.
    the normalised input): logit = gradient term + bias term, bias per layer, top features and the
    full map. Computed and stored on the first request for an example that was not flagged or hard."""
    return explain_example(engine.store, engine.settings, job_id, example_id, method, target, owner)


@router.get("/jobs/{job_id}/export", responses={200: {"content": {m: {} for m in MEDIA.values()}}, **ERRORS})
def export(job_id: str, engine: EngineDep, owner: OwnerDep,
           what: ExportKind = "scores", format: ExportFormat = "csv") -> FileResponse:
    """The rows of `curate export`, as a file download."""
    rows = queries.export_rows(engine.store, job_id, what, owner, engine.settings.datasets_dir)
    exports = engine.settings.exports_dir
    exports.mkdir(exist_ok=True)
    folder = Path(tempfile.mkdtemp(dir=exports))
    path = write_table(rows, format, folder / f"{job_id}-{what}.{format}")
    return FileResponse(path, media_type=MEDIA[format], filename=path.name,
                        background=BackgroundTask(lambda: (path.unlink(missing_ok=True), folder.rmdir())))
