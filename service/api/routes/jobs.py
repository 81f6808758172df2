"""/jobs: submit, list, read (progress, ETA), follow (server-sent events), cancel."""

import asyncio
import json
from collections.abc import AsyncIterator
from functools import partial

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response, StreamingResponse

from service.store import jobs

from service.read import queries
from service.store.jobs import job_out
from service.api.routes.deps import EngineDep, OwnerDep
from service.api.routes.results import serve_json
from service.schemas import ErrorResponse, JobIn, JobOut

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


@router.get("/jobs/{job_id}/events", responses={200: {"content": {"text/event-stream": {}}}, **ERRORS})
async def job_events(job_id: str, request: Request, engine: EngineDep, owner: OwnerDep) -> StreamingResponse:
    """Server-sent events: `progress` whenever the job row changes, `end` when it finishes."""
    await run_in_threadpool(jobs.get_job, engine.store, job_id, owner)  # 404 before the stream starts

    async def stream() -> AsyncIterator[str]:
        last = None
        while not await request.is_disconnected():
            job = await run_in_threadpool(jobs.get_job, engine.store, job_id, owner)
            data = job_out(job).model_dump_json(include={"job_id", "status", "epochs_done", "epochs_total",
                                                         "progress", "eta_seconds", "error"})
            if data != last:
                yield f"event: progress\ndata: {data}\n\n"
                last = data
            if job.status in jobs.FINISHED:
                yield f"event: end\ndata: {json.dumps({'status': job.status})}\n\n"
                return
            await asyncio.sleep(0.5)

    return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
