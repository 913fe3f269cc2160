"""The bodies the framework's routes take and answer, as pydantic models (their OpenAPI schemas).

The publish's body is `tidings.validation.PublishIn` (the raw route validates it itself).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictStr

from tidings.channels.preferences import ChannelsIn, ChannelsOut
from tidings.validation import WholeNumber, exactly_one, whole

__all__ = [
    "MAX_PAGE",
    "MAX_SEQ",
    "ArchiveIn",
    "ArchiveOut",
    "NotificationOut",
    "PreferencesIn",
    "PreferencesOut",
    "ReadIn",
    "ReadOut",
    "ReadyOut",
    "SeenIn",
    "SeenOut",
    "Seq",
    "SessionIn",
    "SessionOut",
    "TokenIn",
    "TokenOut",
    "UnreadOut",
]

MAX_PAGE = 100
# Seqs are 64-bit integers in every store; a larger number is a client error, not a crash.
MAX_SEQ = 2**63 - 1

Seq = Annotated[int, Field(strict=True, ge=-MAX_SEQ, le=MAX_SEQ), BeforeValidator(whole)]


class ActorOut(BaseModel):
    name: str
    avatar_url: str | None


class ActionOut(BaseModel):
    label: str
    url: str


class NotificationOut(BaseModel):
    id: int
    user_id: str
    message: str
    link: str | None
    kind: str | None
    data: dict[str, Any]
    category: str | None
    actor: ActorOut | None
    actions: list[ActionOut]
    group: str | None
    created_at: str
    expires_at: str | None
    read_at: str | None
    seen_at: str | None
    archived_at: str | None
    snoozed_until: str | None = Field(
        default=None, description="set while snoozed: hidden until then (design v3)"
    )
    group_count: int | None = Field(
        default=None,
        description="with grouped=1: how many unread notifications this row stands for",
    )


class CategoryCountOut(BaseModel):
    unread: int
    unseen: int


class UnreadOut(BaseModel):
    unread: int
    unseen: int
    last_seq: int
    categories: dict[str, CategoryCountOut]


class SeenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    up_to: Seq


class SeenOut(BaseModel):
    up_to: int
    unseen: int


class ArchiveIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ids: list[Seq] = Field(max_length=10_000)


class PreferencesIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    muted_categories: list[StrictStr] = Field(default_factory=list)
    channels: ChannelsIn = Field(default_factory=ChannelsIn)


class PreferencesOut(BaseModel):
    muted_categories: list[str]
    channels: ChannelsOut


class ArchiveOut(BaseModel):
    ids: list[int]
    unread: int
    unseen: int


class ReadIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra=exactly_one("ids", "up_to"))
    ids: list[Seq] | None = Field(default=None, max_length=10_000)
    up_to: Seq | None = None


class ReadOut(BaseModel):
    unread: int
    ids: list[int] | None = None
    up_to: int | None = None


class SessionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    token: StrictStr


class SessionOut(BaseModel):
    user_id: str
    expires_at: int


class TokenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user_id: StrictStr | WholeNumber
    ttl: Annotated[int, Field(strict=True, ge=1), BeforeValidator(whole)] = 3600


class TokenOut(BaseModel):
    token: str
    expires_at: int


class ReadyOut(BaseModel):
    status: str
    checks: dict[str, str]
