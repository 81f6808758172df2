"""The dashboard: HTML pages under / and /ui/..., and their PNGs. Errors render as an HTML page.

Same owner checks as the API (OwnerDep). With API keys enabled a browser signs in at /ui/login
with its key and then sends the session cookie (service.api.auth); a page asked for by a browser
(Accept: text/html) without a valid session redirects there (303), any other client keeps the
API's JSON 401.
"""

from collections.abc import Awaitable, Callable
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute

from service.api.auth import SESSION_COOKIE, SESSION_TTL_S, CrossSiteRequest, KeyRing, Unauthorized, check_same_origin
from service.api.routes.deps import EngineDep, OwnerDep, UserDep
from service.errors import CurationError
from service.web import curation as web_curation
from service.web import report as web

PNG = "image/png"


class PageRoute(APIRoute):
    """Sends a browser that is not signed in to the sign-in page instead of a JSON 401."""

    def get_route_handler(self) -> Callable[[Request], Awaitable[Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except Unauthorized:
                if "text/html" not in request.headers.get("accept", ""):
                    raise
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                response = RedirectResponse(f"/ui/login?next={quote(target, safe='')}", status_code=303)
                if SESSION_COOKIE in request.cookies:  # expired or no longer valid: drop it
                    _clear_session(response, request)
                return response

        return route


router = APIRouter(tags=["dashboard"], include_in_schema=False, route_class=PageRoute)


def _html(render: Callable[[], str]) -> HTMLResponse:
    try:
        return HTMLResponse(render())
    except CurationError as exc:
        return HTMLResponse(web.render_error(exc.status_code, exc.message), status_code=exc.status_code)


def _safe_next(url: str) -> str:
    """Where to go after signing in: a path on this server only (never //host: an open redirect)."""
    if url.startswith("/") and not url.startswith(("//", "/\\")) and url.isprintable():
        return url
    return "/"


def _check_not_cross_site(request: Request) -> None:
    """Sign-in and sign-out forms: refused when the browser says they came from another site."""
    origin, referer = request.headers.get("origin"), request.headers.get("referer")
    if origin or referer:
        check_same_origin(request.method, origin, referer, request.headers.get("host"))


def _clear_session(response: Response, request: Request) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/", secure=request.url.scheme == "https", httponly=True,
                           samesite="strict")


def _keys(request: Request) -> KeyRing:
    return request.app.state.keys


@router.get("/ui/login", response_class=HTMLResponse)
def login_page(request: Request, next_url: Annotated[str, Query(alias="next", max_length=2048)] = "/") -> Response:
    keys, next_url = _keys(request), _safe_next(next_url)
    if not keys.enabled():
        return RedirectResponse(next_url, status_code=303)  # open mode: nothing to sign in to
    message = None
    if cookie := request.cookies.get(SESSION_COOKIE):
        try:
            keys.session_owner(cookie)
            return RedirectResponse(next_url, status_code=303)  # signed in already
        except Unauthorized as exc:
            message = exc.message
    return HTMLResponse(web.render_login(next_url, message), headers={"Cache-Control": "no-store"})


@router.post("/ui/login", response_class=HTMLResponse)
def login(request: Request, key: Annotated[str, Form(max_length=1024)] = "",
          next_url: Annotated[str, Form(alias="next", max_length=2048)] = "/") -> Response:
    """A valid key: the session cookie, then back to `next`. A wrong one: the form again, 401."""
    keys, next_url = _keys(request), _safe_next(next_url)
    if not keys.enabled():
        return RedirectResponse(next_url, status_code=303)
    try:
        _check_not_cross_site(request)
        token = keys.create_session(key.strip())
    except CrossSiteRequest as exc:
        return HTMLResponse(web.render_error(exc.status_code, exc.message), status_code=exc.status_code)
    except Unauthorized:
        message = "That API key is not valid on this server: check it and try again." if key.strip() else \
            "Enter your API key."
        return HTMLResponse(web.render_login(next_url, message), status_code=401, headers={"Cache-Control": "no-store"})
    response = RedirectResponse(next_url, status_code=303)
    response.set_cookie(SESSION_COOKIE, token, max_age=SESSION_TTL_S, path="/", secure=request.url.scheme == "https",
                        httponly=True, samesite="strict")
    return response


@router.post("/ui/logout", response_class=HTMLResponse)
def logout(request: Request) -> Response:
    try:
        _check_not_cross_site(request)
    except CrossSiteRequest as exc:
        return HTMLResponse(web.render_error(exc.status_code, exc.message), status_code=exc.status_code)
    response = RedirectResponse("/ui/login" if _keys(request).enabled() else "/", status_code=303)
    _clear_session(response, request)
    return response


@router.get("/", response_class=HTMLResponse)
def home(engine: EngineDep, owner: OwnerDep, user: UserDep) -> HTMLResponse:
    return _html(lambda: web.render_home(engine.store, owner, user))


@router.get("/ui/jobs/{job_id}", response_class=HTMLResponse)
def job_page(job_id: str, engine: EngineDep, owner: OwnerDep, user: UserDep) -> HTMLResponse:
    return _html(lambda: web.render_job(engine.store, engine.settings.data_dir, job_id, owner, user))


Name = Annotated[str | None, Query(max_length=1024)]


@router.get("/ui/jobs/{job_id}/gallery/{view}", response_class=HTMLResponse)
def review_page(job_id: str, view: str, engine: EngineDep, owner: OwnerDep, user: UserDep, given: Name = None,
                suggested: Name = None, decision: Name = None, order: Name = None,
                page: Annotated[int | None, Query(ge=1, le=2**31)] = None,
                offset: Annotated[int, Query(ge=0, le=2**31)] = 0) -> HTMLResponse:
    """The review page (mislabeled, easy, intermediate, hard or all); `offset` keeps old gallery links working.
    An empty parameter (a filter form's "any") is no filter."""
    query = web_curation.ReviewQuery(view=view, given=given or None, suggested=suggested or None,
                                     decision=decision or None, order=order or None,
                                     page=page or offset // web_curation.PAGE_SIZE + 1)
    return _html(lambda: web_curation.render_review(engine.store, engine.settings.data_dir, job_id, query, owner,
                                                                  user))


@router.get("/ui/datasets/{dataset_id}", response_class=HTMLResponse)
def dataset_page(dataset_id: str, engine: EngineDep, owner: OwnerDep, user: UserDep) -> HTMLResponse:
    return _html(lambda: web_curation.render_dataset(engine.store, engine.settings.data_dir, dataset_id, owner, user))


@router.get("/ui/jobs/{job_a}/diff/{job_b}", response_class=HTMLResponse)
def diff_page(job_a: str, job_b: str, engine: EngineDep, owner: OwnerDep, user: UserDep) -> HTMLResponse:
    return _html(lambda: web_curation.render_diff(engine.store, job_a, job_b, owner, user))


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
