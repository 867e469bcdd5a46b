"""What an ``install_*_api`` function gives an app, and how its module-level routes read it.

Routes are module-level functions (one router a module, found by reading the module), so what
they act on cannot come from a closure: the install function puts it on ``app.state`` and the
routes take it as a FastAPI dependency. :class:`AppState` names that slot once, so the name
written and the name read cannot drift apart, and the routes' type is the stored one.

>>> from fastapi import FastAPI
>>> counter = AppState[int]("counter")
>>> app = FastAPI()
>>> counter.put(app, 3)
>>> app.state.counter
3
"""

from __future__ import annotations

from typing import Generic, TypeVar

from fastapi import FastAPI, Request

__all__ = ["AppState"]

T = TypeVar("T")


class AppState(Generic[T]):
    """One named slot of ``app.state``; the instance itself is the dependency that reads it
    (``Annotated[Thing, Depends(slot)]``)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def put(self, app: FastAPI, value: T) -> None:
        """Give the app the value its routes act on."""
        setattr(app.state, self.name, value)

    def __call__(self, request: Request) -> T:
        value: T = getattr(request.app.state, self.name)
        return value

    def __repr__(self) -> str:
        return f"AppState({self.name!r})"
