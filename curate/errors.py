"""One exception type for the whole `curate` API: the engine's own errors (service.errors, raised
in-process) become CurateError with the same code, HTTP status and message a server would send."""

from collections.abc import Callable
from functools import wraps
from typing import ParamSpec, TypeVar

from service.cli.client import CurateError
from service.errors import CurationError

P = ParamSpec("P")
R = TypeVar("R")


def curate_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Re-raise every CurationError of `fn` as CurateError(message, code, status)."""

    @wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except CurateError:
            raise
        except CurationError as exc:
            raise CurateError(exc.message, exc.code, exc.status_code) from exc

    return wrapper


def with_curate_errors(cls: type) -> type:
    """curate_errors on the constructor and every public method of a class."""
    for name, value in list(vars(cls).items()):
        if callable(value) and (name == "__init__" or not name.startswith("_")):
            setattr(cls, name, curate_errors(value))
    return cls
