"""The dashboard: HTML pages under / and /ui/..., and their PNGs. Errors render as an HTML page.

Same owner checks as the API (OwnerDep): with API keys enabled a browser sends no Bearer
header, so the pages answer 401 (open mode only, or put the dashboard behind your proxy).
"""

from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse, HTMLResponse, Response

from service import web
from service.errors import CurationError
from service.routes.deps import EngineDep, OwnerDep

router = APIRouter(tags=["dashboard"], include_in_schema=False)
PNG = "image/png"


def _html(render: Callable[[], str]) -> HTMLResponse:
    try:
        return HTMLResponse(render())
    except CurationError as exc:
        return HTMLResponse(web.render_error(exc.status_code, exc.message), status_code=exc.status_code)


@router.get("/", response_class=HTMLResponse)
def home(engine: EngineDep, owner: OwnerDep) -> HTMLResponse:
    return _html(lambda: web.render_home(engine.store, owner))


@router.get("/ui/jobs/{job_id}", response_class=HTMLResponse)
def job_page(job_id: str, engine: EngineDep, owner: OwnerDep) -> HTMLResponse:
    return _html(lambda: web.render_job(engine.store, job_id, owner))


@router.get("/ui/jobs/{job_id}/gallery/{split}", response_class=HTMLResponse)
def gallery(job_id: str, split: str, engine: EngineDep, owner: OwnerDep,
            offset: Annotated[int, Query(ge=0, le=2**31)] = 0) -> HTMLResponse:
    return _html(lambda: web.render_gallery(engine.store, engine.settings.data_dir, job_id, split, offset, owner))


@router.get("/ui/jobs/{job_id}/report.html", response_class=HTMLResponse)
def report(job_id: str, engine: EngineDep, owner: OwnerDep) -> HTMLResponse:
    return _html(lambda: web.render_report(engine.store, job_id, owner))


@router.get("/ui/jobs/{job_id}/dynamics.png", response_class=FileResponse)
def dynamics_png(job_id: str, engine: EngineDep, owner: OwnerDep) -> FileResponse:
    return FileResponse(web.plot_path(engine.store, job_id, "dynamics", owner), media_type=PNG)


@router.get("/ui/jobs/{job_id}/adaboost.png", response_class=FileResponse)
def adaboost_png(job_id: str, engine: EngineDep, owner: OwnerDep) -> FileResponse:
    return FileResponse(web.plot_path(engine.store, job_id, "adaboost", owner), media_type=PNG)


@router.get("/ui/jobs/{job_id}/examples/{example_id}/heatmap.png", response_class=FileResponse)
def heatmap_png(job_id: str, example_id: int, engine: EngineDep, owner: OwnerDep) -> FileResponse:
    return FileResponse(web.heatmap_file(engine.store, engine.settings.data_dir, job_id, example_id, owner),
                        media_type=PNG)


@router.get("/ui/datasets/{dataset_id}/examples/{example_id}.png", response_class=Response)
def thumbnail(dataset_id: str, example_id: int, engine: EngineDep, owner: OwnerDep) -> Response:
    png = web.render_thumbnail(engine.store, engine.settings.data_dir, dataset_id, example_id, owner)
    return Response(png, media_type=PNG, headers={"Cache-Control": "max-age=3600"})
