"""Recorded jobs over HTTP: the dynamics of the user's own models (curate.Recorder against a server).

POST /jobs/recorded opens one on a stored dataset; POST /jobs/{id}/epochs?model=&epoch= sends one
model's logits of one epoch for every example, as raw little-endian float32 (n_examples x n_classes,
rows in example_id order: the exact size is known, so anything else is refused before it is read
whole); POST /jobs/{id}/finish scores them. Tenancy as everywhere: a key sees only its own jobs.
"""

from typing import Annotated

import numpy as np
from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool

from service.api.routes.deps import EngineDep, OwnerDep
from service.engine import recorded
from service.errors import InvalidSpec, PayloadTooLarge
from service.schemas import EpochLogged, ErrorResponse, JobOut, RecordedJobIn
from service.store import catalog, jobs
from service.store.jobs import job_out

router = APIRouter(tags=["recorded"])
ERRORS = {c: {"model": ErrorResponse} for c in (401, 404, 409, 413, 422)}
LOGITS_BODY = {"requestBody": {"required": True, "content": {"application/octet-stream": {
    "schema": {"type": "string", "format": "binary",
               "description": "float32 little-endian logits, n_examples x n_classes, rows by example_id"}}}}}


@router.post("/jobs/recorded", status_code=201, response_model=JobOut, responses=ERRORS)
def create_recorded(body: RecordedJobIn, engine: EngineDep, owner: OwnerDep) -> JobOut:
    """Open a recorded job (status `recording`) on one of the caller's datasets."""
    job_id = recorded.create(engine, body.dataset_id, body.n_models, body.n_epochs, owner)
    return job_out(jobs.get_job(engine.store, job_id, owner))


@router.post("/jobs/{job_id}/epochs", response_model=EpochLogged, responses=ERRORS, openapi_extra=LOGITS_BODY)
async def log_epoch(job_id: str, request: Request, engine: EngineDep, owner: OwnerDep,
                    model: Annotated[int, Query(ge=0, le=recorded.MAX_MODELS - 1)],
                    epoch: Annotated[int, Query(ge=0, le=recorded.MAX_EPOCH)]) -> EpochLogged:
    """One model's logits of one epoch (0 = before training); the same model and epoch again replaces them."""
    job = await run_in_threadpool(jobs.get_job, engine.store, job_id, owner)
    n_examples, n_classes = await run_in_threadpool(catalog.dataset_size, engine.store, job.dataset_id)
    expected = n_examples * n_classes * 4
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > expected:
        raise PayloadTooLarge(f"{int(declared):,} bytes of logits; dataset {job.dataset_id} takes exactly "
                              f"{expected:,} ({n_examples} examples x {n_classes} classes x 4-byte float32)")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > expected:
            raise PayloadTooLarge(f"more than {expected:,} bytes of logits ({n_examples} examples x {n_classes} "
                                  "classes x 4-byte float32)")
    if len(body) != expected:
        raise InvalidSpec(f"{len(body):,} bytes of logits; dataset {job.dataset_id} takes exactly {expected:,} "
                          f"({n_examples} examples x {n_classes} classes x 4-byte little-endian float32)")
    logits = np.frombuffer(bytes(body), dtype="<f4").reshape(n_examples, n_classes)
    done = await run_in_threadpool(recorded.log_epoch, engine, job_id, model, epoch, logits, owner)
    return EpochLogged(job_id=job_id, model=model, epoch=epoch, epochs_done=done)


@router.post("/jobs/{job_id}/finish", response_model=JobOut, responses=ERRORS)
def finish_recorded(job_id: str, engine: EngineDep, owner: OwnerDep) -> JobOut:
    """Score the logged epochs like Curate's own ensemble; 422 naming a model's missing epoch."""
    return job_out(recorded.finish(engine, job_id, owner))
