"""Publish to tidings from Python: `Client` and `AsyncClient` (on httpx), and `mint_token`.

    from tidings.client import Client

    with Client("http://127.0.0.1:8000", "pk-app") as tidings:
        tidings.publish("42", "Invoice #7 was paid", link="/invoices/7")

A publish is retried on network errors and on 503 (the store is briefly unavailable), never on
another answer, and every attempt sends the same idempotency key (one is generated when none is
given): a request that reached the store before its answer was lost is stored once. Any other
non-2xx answer raises `TidingsError` with the server's `error` and `detail`.

A publish with a future `deliver_at` is scheduled: it returns the server's 202 answer
(`idempotency_key`, `deliver_at`, `user_ids`), and `cancel_scheduled(idempotency_key)` cancels it
before it is due.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Generator, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any
from urllib.parse import quote

import anyio
import httpx
import jwt

__all__ = ["AsyncClient", "Client", "TidingsError", "mint_token"]

TIMEOUT = 10.0
RETRIES = 3
BACKOFF = 0.25
MAX_DELAY = 5.0

PUBLISH_PATH = "/api/notifications"
TOKENS_PATH = "/api/tokens"
SCHEDULED_PATH = "/api/notifications/scheduled/"
USERS_PATH = "/api/users/"


class TidingsError(Exception):
    """tidings refused a request (`status` 4xx/5xx), or could not be reached (`status` None).

    `error` is the server's machine-readable code (`invalid_request`, `unauthorized`, …), or
    `network_error`; `detail` its explanation (a string, or `{"field", "problem"}`).
    """

    def __init__(self, status: int | None, error: str, detail: Any) -> None:
        super().__init__(f"{status or 'no answer'} {error}: {detail}")
        self.status = status
        self.error = error
        self.detail = detail


def mint_token(secret: str, user_id: str | int, ttl: int = 3600) -> str:
    """A user token signed locally with `TIDINGS_SECRET` (HS256, claims `sub`, `iat`, `exp`)."""
    now = int(time.time())
    body = {"sub": str(user_id), "iat": now, "exp": now + ttl}
    return jwt.encode(body, secret, algorithm="HS256")


class _Attempts:
    """The retry policy shared by both clients: which outcomes are retried, and how long to wait."""

    def __init__(self, retries: int, backoff: float) -> None:
        self.retries = retries
        self.backoff = backoff

    def delays(self) -> Generator[float, None, None]:
        """Yields before each retry the seconds to wait first (exponential, with jitter)."""
        for attempt in range(self.retries):
            yield min(MAX_DELAY, self.backoff * 2**attempt) * random.uniform(0.5, 1.0)

    @staticmethod
    def retry_after(response: httpx.Response, delay: float) -> float:
        raw = response.headers.get("retry-after", "")
        return min(MAX_DELAY, float(raw)) if raw.isdigit() else delay


class BaseClient:
    """What `Client` and `AsyncClient` share: the URL, the request bodies, the answers."""

    def __init__(
        self,
        url: str,
        publisher_key: str,
        *,
        timeout: float = TIMEOUT,
        retries: int = RETRIES,
        backoff: float = BACKOFF,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"url must start with http:// or https://, got {url!r}")
        # "https://tidings.example/" and "https://tidings.example" name the same server.
        self.url = url.rstrip("/")
        self.publisher_key = publisher_key
        self.timeout = timeout
        self._attempts = _Attempts(retries, backoff)

    def _headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.publisher_key}", "accept": "application/json"}

    @staticmethod
    def _publish_body(
        target: dict[str, Any], message: str, fields: dict[str, Any]
    ) -> dict[str, Any]:
        body: dict[str, Any] = {**target, "message": message}
        for name, value in fields.items():
            # Absent, not null: a server that predates a field accepts a publish without it.
            if value is None:
                continue
            if isinstance(value, datetime):
                if value.tzinfo is None:
                    raise ValueError(f"{name} must be timezone-aware (e.g. datetime.now(UTC))")
                value = value.isoformat()
            body[name] = value
        # Generated once per call, so every retry of this publish carries the same key.
        body.setdefault("idempotency_key", uuid.uuid4().hex)
        return body

    def check_fields(self, fields: Mapping[str, Any]) -> None:
        """Raise what `publish` would raise for these fields before sending anything."""
        self._publish_body({}, "", dict(fields))

    @staticmethod
    def _scheduled_path(idempotency_key: str) -> str:
        if not idempotency_key:
            raise ValueError("idempotency_key must not be empty")
        return SCHEDULED_PATH + quote(idempotency_key, safe="")

    @staticmethod
    def _cancelled(response: httpx.Response) -> bool:
        """True for 204; False when nothing was pending (404 `not_scheduled`); else raises."""
        if response.status_code == 404:
            try:
                if response.json().get("error") == "not_scheduled":
                    return False
            except (ValueError, AttributeError):
                pass
        BaseClient._answer(response)
        return True

    @staticmethod
    def _answer(response: httpx.Response) -> Any:
        if response.status_code == 204:
            return None
        if response.is_success:
            return response.json()
        try:
            problem = response.json()
            error, detail = str(problem["error"]), problem.get("detail")
        except (ValueError, KeyError, TypeError):
            error, detail = "http_error", response.text[:500]
        raise TidingsError(response.status_code, error, detail)

    @staticmethod
    def _unreachable(url: str, exc: httpx.TransportError) -> TidingsError:
        return TidingsError(None, "network_error", f"{url}: {exc!r}")


def _user_path(user_id: str | int) -> str:
    return USERS_PATH + quote(str(user_id), safe="")


def _fields(
    link: str | None,
    kind: str | None,
    category: str | None,
    data: Mapping[str, Any] | None,
    actor: Mapping[str, Any] | None,
    actions: Sequence[Mapping[str, str]] | None,
    group: str | None,
    deliver_at: datetime | str | None,
    expires_at: datetime | str | None,
    idempotency_key: str | None,
) -> dict[str, Any]:
    return {
        "link": link,
        "kind": kind,
        "category": category,
        "data": dict(data) if data is not None else None,
        "actor": dict(actor) if actor is not None else None,
        "actions": [dict(a) for a in actions] if actions is not None else None,
        "group": group,
        "deliver_at": deliver_at,
        "expires_at": expires_at,
        "idempotency_key": idempotency_key,
    }


class Client(BaseClient):
    """The blocking client. Use it as a context manager, or call `close()`."""

    def __init__(
        self,
        url: str,
        publisher_key: str,
        *,
        timeout: float = TIMEOUT,
        retries: int = RETRIES,
        backoff: float = BACKOFF,
    ) -> None:
        super().__init__(url, publisher_key, timeout=timeout, retries=retries, backoff=backoff)
        self._http = httpx.Client(timeout=timeout, headers=self._headers())

    def publish(
        self,
        user_id: str | int,
        message: str,
        *,
        link: str | None = None,
        kind: str | None = None,
        category: str | None = None,
        data: Mapping[str, Any] | None = None,
        actor: Mapping[str, Any] | None = None,
        actions: Sequence[Mapping[str, str]] | None = None,
        group: str | None = None,
        deliver_at: datetime | str | None = None,
        expires_at: datetime | str | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Store a notification for `user_id`; returns it as stored (`id` is the user's seq), or
        with a future `deliver_at` what was scheduled (`idempotency_key`, `deliver_at`,
        `user_ids`)."""
        fields = _fields(
            link, kind, category, data, actor, actions, group, deliver_at, expires_at,
            idempotency_key,
        )  # fmt: skip
        body = self._publish_body({"user_id": user_id}, message, fields)
        stored: dict[str, Any] = self._post(PUBLISH_PATH, body)
        return stored

    def publish_many(
        self,
        user_ids: Sequence[str | int],
        message: str,
        *,
        link: str | None = None,
        kind: str | None = None,
        category: str | None = None,
        data: Mapping[str, Any] | None = None,
        actor: Mapping[str, Any] | None = None,
        actions: Sequence[Mapping[str, str]] | None = None,
        group: str | None = None,
        deliver_at: datetime | str | None = None,
        expires_at: datetime | str | None = None,
        idempotency_key: str | None = None,
    ) -> Any:
        """The same notification for each of `user_ids`, in one request; returns them stored
        (a list), or with a future `deliver_at` what was scheduled (a dict)."""
        fields = _fields(
            link, kind, category, data, actor, actions, group, deliver_at, expires_at,
            idempotency_key,
        )  # fmt: skip
        body = self._publish_body({"user_ids": list(user_ids)}, message, fields)
        return self._post(PUBLISH_PATH, body)

    def token(self, user_id: str | int, ttl: int = 3600) -> str:
        """A user token minted by the server (for apps that do not hold `TIDINGS_SECRET`)."""
        answer = self._post(TOKENS_PATH, {"user_id": user_id, "ttl": ttl})
        return str(answer["token"])

    # The email digest.
    def set_user(self, user_id: str | int, *, email: str | None) -> dict[str, Any]:
        """Set the address `user_id`'s email digests go to (None: no digests); returns the
        stored record `{"user_id", "email", "updated_at"}`."""
        record: dict[str, Any] = self._answer(
            self._send("PUT", _user_path(user_id), {"email": email})
        )
        return record

    def cancel_scheduled(self, idempotency_key: str) -> bool:
        """Cancel a scheduled publish before it is due: True when it was pending (now
        cancelled for every user), False when nothing was (unknown key, delivered or cancelled
        already)."""
        return self._cancelled(self._send("DELETE", self._scheduled_path(idempotency_key)))

    def _post(self, path: str, body: dict[str, Any]) -> Any:
        return self._answer(self._send("POST", path, body))

    def _send(self, method: str, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
        url = self.url + path
        delays = self._attempts.delays()
        while True:
            try:
                response = self._http.request(method, url, json=body)
            except httpx.TransportError as exc:
                delay = next(delays, None)
                if delay is None:
                    raise self._unreachable(url, exc) from exc
                time.sleep(delay)
                continue
            if response.status_code == 503:
                delay = next(delays, None)
                if delay is not None:
                    time.sleep(self._attempts.retry_after(response, delay))
                    continue
            return response

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AsyncClient(BaseClient):
    """The asyncio (or trio) client. Use it as an async context manager, or await `aclose()`."""

    def __init__(
        self,
        url: str,
        publisher_key: str,
        *,
        timeout: float = TIMEOUT,
        retries: int = RETRIES,
        backoff: float = BACKOFF,
    ) -> None:
        super().__init__(url, publisher_key, timeout=timeout, retries=retries, backoff=backoff)
        self._http = httpx.AsyncClient(timeout=timeout, headers=self._headers())

    async def publish(
        self,
        user_id: str | int,
        message: str,
        *,
        link: str | None = None,
        kind: str | None = None,
        category: str | None = None,
        data: Mapping[str, Any] | None = None,
        actor: Mapping[str, Any] | None = None,
        actions: Sequence[Mapping[str, str]] | None = None,
        group: str | None = None,
        deliver_at: datetime | str | None = None,
        expires_at: datetime | str | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Store a notification for `user_id`; returns it as stored (`id` is the user's seq), or
        with a future `deliver_at` what was scheduled (`idempotency_key`, `deliver_at`,
        `user_ids`)."""
        fields = _fields(
            link, kind, category, data, actor, actions, group, deliver_at, expires_at,
            idempotency_key,
        )  # fmt: skip
        body = self._publish_body({"user_id": user_id}, message, fields)
        stored: dict[str, Any] = await self._post(PUBLISH_PATH, body)
        return stored

    async def publish_many(
        self,
        user_ids: Sequence[str | int],
        message: str,
        *,
        link: str | None = None,
        kind: str | None = None,
        category: str | None = None,
        data: Mapping[str, Any] | None = None,
        actor: Mapping[str, Any] | None = None,
        actions: Sequence[Mapping[str, str]] | None = None,
        group: str | None = None,
        deliver_at: datetime | str | None = None,
        expires_at: datetime | str | None = None,
        idempotency_key: str | None = None,
    ) -> Any:
        """The same notification for each of `user_ids`, in one request; returns them stored
        (a list), or with a future `deliver_at` what was scheduled (a dict)."""
        fields = _fields(
            link, kind, category, data, actor, actions, group, deliver_at, expires_at,
            idempotency_key,
        )  # fmt: skip
        body = self._publish_body({"user_ids": list(user_ids)}, message, fields)
        return await self._post(PUBLISH_PATH, body)

    async def token(self, user_id: str | int, ttl: int = 3600) -> str:
        """A user token minted by the server (for apps that do not hold `TIDINGS_SECRET`)."""
        answer = await self._post(TOKENS_PATH, {"user_id": user_id, "ttl": ttl})
        return str(answer["token"])

    # The email digest.
    async def set_user(self, user_id: str | int, *, email: str | None) -> dict[str, Any]:
        """Set the address `user_id`'s email digests go to (None: no digests); returns the
        stored record `{"user_id", "email", "updated_at"}`."""
        record: dict[str, Any] = self._answer(
            await self._send("PUT", _user_path(user_id), {"email": email})
        )
        return record

    async def cancel_scheduled(self, idempotency_key: str) -> bool:
        """Cancel a scheduled publish before it is due: True when it was pending (now
        cancelled for every user), False when nothing was (unknown key, delivered or cancelled
        already)."""
        path = self._scheduled_path(idempotency_key)
        return self._cancelled(await self._send("DELETE", path))

    async def _post(self, path: str, body: dict[str, Any]) -> Any:
        return self._answer(await self._send("POST", path, body))

    async def _send(
        self, method: str, path: str, body: dict[str, Any] | None = None
    ) -> httpx.Response:
        url = self.url + path
        delays = self._attempts.delays()
        while True:
            try:
                response = await self._http.request(method, url, json=body)
            except httpx.TransportError as exc:
                delay = next(delays, None)
                if delay is None:
                    raise self._unreachable(url, exc) from exc
                await anyio.sleep(delay)
                continue
            if response.status_code == 503:
                delay = next(delays, None)
                if delay is not None:
                    await anyio.sleep(self._attempts.retry_after(response, delay))
                    continue
            return response

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
