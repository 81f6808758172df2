"""/jobs: submit, list, read (progress, ETA), follow (server-sent events), cancel."""

import asyncio
from collections.abc import AsyncIterator
from functools import partial
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from fastapi.sse import EventSourceResponse, ServerSentEvent

from service.api.routes.deps import EngineDep, OwnerDep
from service.api.routes.results import serve_json
from service.read import queries
from service.schemas import ErrorResponse, JobIn, JobOut
from service.store import jobs
from service.store.jobs import job_out

router = APIRouter(tags=["jobs"])
ERRORS = {c: {"model": ErrorResponse} for c in (401, 404, 409, 422)}


@router.post("/jobs", status_code=201, response_model=JobOut, responses=ERRORS)
def submit_job(body: JobIn, request: Request, engine: EngineDep, owner: OwnerDep) -> JobOut:
    job_id = engine.submit(body.dataset_id, body.spec, body.adaboost, owner)
    request.app.state.scheduler.wake()
    return job_out(jobs.get_job(engine.store, job_id, owner))


@router.get("/jobs", response_model=list[JobOut], responses=ERRORS)
def list_jobs(engine: EngineDep, owner: OwnerDep) -> list[JobOut]:
    return [job_out(j) for j in jobs.list_jobs(engine.store, owner)]


@router.get("/jobs/{job_id}", response_model=JobOut, responses=ERRORS)
async def get_job(job_id: str, engine: EngineDep, owner: OwnerDep) -> Response:
    """A job: status, progress (live while it runs) and ETA."""
    return await serve_json(partial(queries.job_json, engine.store, engine.cache, job_id, owner))


@router.delete("/jobs/{job_id}", response_model=JobOut, responses=ERRORS)
def cancel_job(job_id: str, engine: EngineDep, owner: OwnerDep) -> JobOut:
    """Cancel: a queued job at once; a running one stops within seconds (status cancelling, then cancelled)."""
    return job_out(engine.cancel(job_id, owner))


@router.post("/jobs/{job_id}/retry", response_model=JobOut, responses=ERRORS)
def retry_job(job_id: str, request: Request, engine: EngineDep, owner: OwnerDep) -> JobOut:
    """Queue a failed or cancelled job again; it resumes from its last committed epoch."""
    job = jobs.retry(engine.store, job_id, owner)
    request.app.state.scheduler.wake()
    return job_out(job)


async def _followed_job(job_id: str, engine: EngineDep, owner: OwnerDep) -> str:
    """A dependency, so that an unknown job answers 404 before the event stream starts."""
    await run_in_threadpool(jobs.get_job, engine.store, job_id, owner)
    return job_id


PROGRESS_FIELDS = {"job_id", "status", "epochs_done", "epochs_total", "progress", "eta_seconds", "estimated_seconds",
                   "estimate_note", "error"}


# errors answer JSON: said explicitly, since FastAPI documents a route's responses in its response class's type
JSON_ERRORS = {c: {"description": "error", "content": {"application/json": {
    "schema": {"$ref": "#/components/schemas/ErrorResponse"}}}} for c in ERRORS}


@router.get("/jobs/{job_id}/events", response_class=EventSourceResponse,
            responses={200: {"content": {"text/event-stream": {}}}, **JSON_ERRORS})
async def job_events(job_id: Annotated[str, Depends(_followed_job)], request: Request, engine: EngineDep,
                     owner: OwnerDep) -> AsyncIterator[ServerSentEvent]:
    """Server-sent events: `progress` (the job's status and progress fields) whenever the job row
    changes, `end` ({"status": ...}) when it finishes. FastAPI writes the wire format and sends a
    keep-alive comment every 15 s of silence, so clients can time out a dead connection."""
    last = None
    while not await request.is_disconnected():
        job = await run_in_threadpool(jobs.get_job, engine.store, job_id, owner)
        data = job_out(job).model_dump_json(include=PROGRESS_FIELDS)
        if data != last:
            yield ServerSentEvent(event="progress", raw_data=data)
            last = data
        if job.status in jobs.FINISHED:
            yield ServerSentEvent(event="end", data={"status": job.status})
            return
        await asyncio.sleep(0.5)
