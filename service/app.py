"""`create_app(settings)`: FastAPI + the engine (store, scheduler, executor) in one process."""

import json
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from service.api.auth import KeyRing
from service.app_info import VERSION
from service.engine.engine import Engine
from service.engine.executors.local import Executor
from service.engine.scheduler import Scheduler
from service.errors import CurationError
from service.ingest.uploads import clean_partial_uploads
from service.limits import BodyReadTimeout, RequestTimeout
from service.read.queries import warm_cache
from service.settings import Settings

log = logging.getLogger("curate.app")


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(status_code=status, content={"error": {"code": code, "message": message}}, headers=headers)


def create_app(settings: Settings, executor: Executor | None = None, server_url: str | None = None) -> FastAPI:
    """The app; the engine starts with it (lifespan) and stops with it."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = Engine(settings, executor, run_by="server")  # sweeps orphan files of a crash
        clean_partial_uploads(settings)
        # a job that just succeeded: its answers go into the result cache before anyone asks
        engine.on_succeeded.append(lambda job: warm_cache(engine.store, engine.cache, job))
        scheduler = Scheduler(engine, settings.max_concurrent_jobs)
        app.state.engine, app.state.scheduler = engine, scheduler
        app.state.keys = KeyRing(engine.store, settings)
        scheduler.start()
        marker = settings.server_marker
        if server_url:
            marker.write_text(json.dumps({"url": server_url, "pid": os.getpid()}))
        try:
            yield
        finally:
            engine.stopping.set()
            scheduler.stop()
            if server_url:
                marker.unlink(missing_ok=True)
            engine.close()

    app = FastAPI(title="Curate", version=VERSION, lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url=None, description="Learning-dynamics scores, difficulty splits and suspected mislabels.")

    @app.exception_handler(CurationError)
    async def curation_error(_: Request, exc: CurationError) -> JSONResponse:
        return _error(exc.status_code, exc.code, exc.message, getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        return _error(422, "invalid_request", problems)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        if isinstance(exc.__cause__, UnicodeDecodeError):  # FastAPI's bare 400 for a body that is not UTF-8
            return _error(422, "invalid_request", f"body: the JSON body is not valid UTF-8 ({exc.__cause__.reason} "
                          f"at byte {exc.__cause__.start})")
        if isinstance(exc.__cause__, RequestTimeout):
            return _error(408, RequestTimeout.code, exc.__cause__.message)
        return _error(exc.status_code, "http_error", str(exc.detail), getattr(exc, "headers", None))

    from service.api.routes import curation, datasets, jobs, recorded, results
    from service.web import routes as web
    app.include_router(datasets.router)
    app.include_router(curation.router)
    app.include_router(jobs.router)
    app.include_router(results.router)
    app.include_router(recorded.router)
    app.include_router(web.router)
    add_docs(app)
    app.add_middleware(BodyReadTimeout, timeout_s=settings.body_read_timeout_s)
    return app


def add_docs(app: FastAPI) -> None:
    """/openapi.json, /docs (Swagger UI) and /redoc behind the API's own auth (a key, or the
    dashboard's session cookie, once any key exists), with their scripts served from the
    fastapi-offline package instead of a CDN, so they work without internet."""
    import fastapi_offline
    from fastapi import Depends
    from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
    from fastapi.responses import HTMLResponse
    from fastapi.staticfiles import StaticFiles

    from service.api.routes.deps import get_owner

    assets = "/docs-assets"
    # nothing on these pages may reach past this server: ReDoc's bundle links its logo from a CDN
    # (cdn.redoc.ly), which the browser now does not fetch; scripts and styles are the package's own
    offline = {"Content-Security-Policy": "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' "
               "'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; "
               "connect-src 'self'"}
    app.mount(assets, StaticFiles(directory=Path(fastapi_offline.__file__).parent / "static"), name="docs-assets")
    auth = [Depends(get_owner)]

    @app.get("/openapi.json", include_in_schema=False, dependencies=auth)
    async def openapi() -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False, dependencies=auth)
    async def swagger() -> HTMLResponse:
        page = get_swagger_ui_html(openapi_url="/openapi.json", title="Curate API",
                                   swagger_js_url=f"{assets}/swagger-ui-bundle.js",
                                   swagger_css_url=f"{assets}/swagger-ui.css", swagger_favicon_url=f"{assets}/favicon.png")
        page.headers.update(offline)
        return page

    @app.get("/redoc", include_in_schema=False, dependencies=auth)
    async def redoc() -> HTMLResponse:
        page = get_redoc_html(openapi_url="/openapi.json", title="Curate API", redoc_js_url=f"{assets}/redoc.standalone.js",
                              redoc_favicon_url=f"{assets}/favicon.png", with_google_fonts=False)
        page.headers.update(offline)
        return page
