"""The channels that reach users who are away: Web Push (`push/`), the email digest (`email/`).

Each is a folder with one `CHANNEL` (a `Channel`: its name, whether the settings turn it on, what
it runs, its routes, what it needs from the store), listed once in `registry.py`. What they share:
`away.py` (why a notification is left out), `presence.py` (who has a stream open on some node),
`preferences.py` (a user's channels in the API's shape). docs/architecture.md shows how a new
channel is added.
"""

from __future__ import annotations

from tidings.channels.base import Channel, Loop, Node, Running
from tidings.channels.registry import CHANNELS, NAMES

__all__ = ["CHANNELS", "NAMES", "Channel", "Loop", "Node", "Running"]
