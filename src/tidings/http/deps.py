"""What the framework's routes depend on: the service, and the caller's credential.

The credential dependencies carry the auth policy. A route that needs a credential declares one
(`UserDep`, `ChangingUserDep`, or `PublisherDep` / `Depends(publisher)` on the route or on its
router), and that is all it does: `check_credentials` finds the checks a route declared in its
dependency tree, so the error handlers run them before they say anything about the body (see
`tidings.http.handlers`). No tag, path or list of routers decides which route needs what.

Dependencies are `async def`: FastAPI runs a plain `def` dependency in a worker thread, a thread
hop per request that cost more than the whole publish.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from tidings.auth import UserCredential, check_origin, check_publisher, read_user
from tidings.errors import is_json_media, unsupported_media_type
from tidings.service import Service

if TYPE_CHECKING:
    from fastapi.dependencies.models import Dependant

__all__ = [
    "ChangingUserDep",
    "PublisherDep",
    "ServiceDep",
    "UserDep",
    "changing_user",
    "check_credentials",
    "current_user",
    "publisher",
    "service_of",
]

Check = Callable[[Request], object]
D = TypeVar("D", bound=Callable[..., Any])

# Each credential dependency -> its check, as a plain function of the request.
_CHECKS: dict[Callable[..., Any], Check] = {}


def credential(check: Check) -> Callable[[D], D]:
    """Mark a dependency as a credential: `check` is what it refuses (an `ApiError`)."""

    def register(dependency: D) -> D:
        _CHECKS[dependency] = check
        return dependency

    return register


def check_credentials(request: Request) -> None:
    """Run every credential check the matched route declares (itself or through its router),
    in the order FastAPI runs them; the first refusal raises its `ApiError`."""
    dependant = getattr(request.scope.get("route"), "dependant", None)
    if dependant is not None:
        for check in _declared(dependant):
            check(request)


def _declared(dependant: Dependant) -> Iterator[Check]:
    for sub in dependant.dependencies:
        check = _CHECKS.get(sub.call) if sub.call is not None else None
        if check is not None:
            yield check
        yield from _declared(sub)


def _service(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


async def service_of(request: Request) -> Service:
    return _service(request)


ServiceDep = Annotated[Service, Depends(service_of)]


# For /openapi.json only: they put the security schemes on the routes. The checks below read
# the header themselves (and the cookie); these never refuse anything.
user_token = HTTPBearer(
    scheme_name="userToken",
    description="a user token (or the tidings_session cookie)",
    auto_error=False,
)
publisher_key = HTTPBearer(
    scheme_name="publisherKey", description="one of TIDINGS_PUBLISHER_KEYS", auto_error=False
)
UserTokenDoc = Annotated[HTTPAuthorizationCredentials | None, Security(user_token)]
PublisherKeyDoc = Annotated[HTTPAuthorizationCredentials | None, Security(publisher_key)]


def _reading_user(request: Request) -> UserCredential:
    return read_user(request, _service(request).settings)


def _changing_user(request: Request) -> UserCredential:
    """A user for a state-changing route: with the cookie, only from an allowed origin."""
    service = _service(request)
    user = read_user(request, service.settings)
    if user.via_cookie:
        check_origin(request, service.settings)
        # A cross-site form can post urlencoded or multipart, but JSON only after a preflight.
        if request.method == "POST" and not is_json_media(request.headers.get("content-type", "")):
            raise unsupported_media_type()
    return user


def _publisher(request: Request) -> None:
    check_publisher(request, _service(request).settings)


@credential(_reading_user)
async def current_user(request: Request, _: UserTokenDoc) -> UserCredential:
    """The caller, by user token or session cookie: for routes that only read."""
    return _reading_user(request)


@credential(_changing_user)
async def changing_user(request: Request, _: UserTokenDoc) -> UserCredential:
    """The caller, for a route that changes something (the CSRF rule for the cookie)."""
    return _changing_user(request)


@credential(_publisher)
async def publisher(request: Request, _: PublisherKeyDoc) -> None:
    """A publisher key: for routes the host app's backend calls."""
    _publisher(request)


UserDep = Annotated[UserCredential, Depends(current_user)]
ChangingUserDep = Annotated[UserCredential, Depends(changing_user)]
PublisherDep = Depends(publisher)
