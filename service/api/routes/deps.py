"""Request dependencies: the engine of this app, the caller's owner id and its key's name."""

from typing import Annotated

from fastapi import Depends, Header, Request

from service.api.auth import SESSION_COOKIE, KeyRing, check_same_origin
from service.engine.engine import Engine


# async: both only read app state (the key table is cached in the KeyRing), so they run on the
# event loop instead of costing a thread-pool hop per request (~0.1 ms each, api_load profile)
async def get_engine(request: Request) -> Engine:
    return request.app.state.engine


async def get_owner(request: Request, authorization: Annotated[str | None, Header()] = None) -> str | None:
    """The Bearer key's owner; without the header, the dashboard's session cookie's owner (and a
    request that changes state must then come from this server's own pages)."""
    keys: KeyRing = request.app.state.keys
    session = request.cookies.get(SESSION_COOKIE)
    if authorization is not None or session is None or not keys.enabled():
        return keys.owner(authorization)
    owner = keys.session_owner(session)
    headers = request.headers
    check_same_origin(request.method, headers.get("origin"), headers.get("referer"), headers.get("host"))
    return owner


OwnerDep = Annotated[str | None, Depends(get_owner)]


async def get_user(request: Request, owner: OwnerDep) -> str | None:
    """The caller's key's name (None when auth is off): who the dashboard says is signed in. Data is
    owned by the owner id; the name is only for people to read."""
    keys: KeyRing = request.app.state.keys
    return keys.name_of(owner)


EngineDep = Annotated[Engine, Depends(get_engine)]
UserDep = Annotated[str | None, Depends(get_user)]
