"""A user's channels in the HTTP API: `{"push": true, "email": true}`, one key per channel.

The request and answer models are made from the registry, so a new channel's key is accepted,
answered and documented in the OpenAPI schema without a line here; each key is optional on a
`PUT` (on when left out), and an unknown one is refused (422), as before.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, StrictBool, create_model

from tidings.channels.registry import NAMES

__all__ = ["ChannelsIn", "ChannelsOut"]

if TYPE_CHECKING:
    # Made at run time from the registry; to the type checker, a model like any other.
    ChannelsIn = BaseModel
    ChannelsOut = BaseModel
else:
    ChannelsIn = create_model(
        "ChannelsIn",
        __config__=ConfigDict(extra="forbid"),
        **dict.fromkeys(NAMES, (StrictBool, True)),
    )
    ChannelsOut = create_model("ChannelsOut", **dict.fromkeys(NAMES, (bool, ...)))
