"""Request dependencies: the engine of this app and the caller's owner name."""

from typing import Annotated

from fastapi import Depends, Header, Request

from service.engine import Engine


def get_engine(request: Request) -> Engine:
    return request.app.state.engine


def get_owner(request: Request, authorization: Annotated[str | None, Header()] = None) -> str | None:
    return request.app.state.keys.owner(authorization)


EngineDep = Annotated[Engine, Depends(get_engine)]
OwnerDep = Annotated[str | None, Depends(get_owner)]
