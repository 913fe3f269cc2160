"""`POST /notifications/snooze` and `POST /notifications/unsnooze` (design v3)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, StrictStr

from tidings.clock import iso_ms
from tidings.errors import error_responses
from tidings.http.deps import ChangingUserDep, ServiceDep
from tidings.http.schemas import NotificationOut, Seq
from tidings.settings import Settings
from tidings.snooze import wake
from tidings.validation import snooze_until_ms

__all__ = ["describe", "snooze_router"]

snooze_router = APIRouter(tags=["user"])

# As many ids as the other id routes take (archive, read).
MAX_IDS = 10_000


class SnoozeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ids: list[Seq] = Field(max_length=MAX_IDS)
    until: StrictStr = Field(
        description="ISO 8601 with an offset, in the future, at most "
        "TIDINGS_MAX_SCHEDULE_DAYS ahead"
    )


def describe(schemas: dict[str, Any], settings: Settings) -> None:
    """Put `until`'s running limit into the OpenAPI schema of `SnoozeIn`. Not `date-time`: it
    counts from now, which JSON Schema cannot say; the format names it
    (`date-time-ahead-max-N-days`: a date-time after now, at most N days ahead)."""
    days = f"{settings.max_schedule_days:g}"
    schemas["SnoozeIn"]["properties"]["until"] = {
        "type": "string",
        "format": f"date-time-ahead-max-{days}-days",
        "description": f"ISO 8601 time with an offset, in the future, at most {days} days ahead",
    }


class SnoozeOut(BaseModel):
    ids: list[int] = Field(description="the caller's notifications that were snoozed")
    until: str
    unread: int
    unseen: int


class UnsnoozeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ids: list[Seq] = Field(max_length=MAX_IDS)


class UnsnoozeOut(BaseModel):
    notifications: list[NotificationOut] = Field(description="those back, unread and unseen")
    unread: int
    unseen: int


@snooze_router.post(
    "/notifications/snooze",
    response_model=SnoozeOut,
    responses=error_responses((400, 401, 403, 413, 415, 422, 503)),
)
async def snooze(body: SnoozeIn, user: ChangingUserDep, service: ServiceDep) -> SnoozeOut:
    """Hide the caller's notifications among `ids` until `until`: not listed (unless
    `snoozed=1`), counted, streamed, pushed or emailed until then; then back unread and unseen,
    with `notifications-unsnoozed` on every stream. Snoozing again sets a new time."""
    until_ms = snooze_until_ms(body.until, service.settings, now=service.clock.now_ms())
    event = await wake.snooze(service, user.user_id, body.ids, until_ms)
    return SnoozeOut(
        ids=list(event.ids), until=iso_ms(until_ms), unread=event.unread, unseen=event.unseen
    )


@snooze_router.post(
    "/notifications/unsnooze",
    response_model=UnsnoozeOut,
    responses=error_responses((400, 401, 403, 413, 415, 422, 503)),
)
async def unsnooze(body: UnsnoozeIn, user: ChangingUserDep, service: ServiceDep) -> Response:
    """Bring the caller's snoozed notifications among `ids` back now, unread and unseen (the
    body of the `notifications-unsnoozed` event their streams get)."""
    event = await wake.unsnooze(service, user.user_id, body.ids)
    return JSONResponse(event.to_json())
