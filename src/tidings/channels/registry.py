"""The channels for users who are away, in one list: a new channel is a folder and a line here."""

from __future__ import annotations

from typing import Final

from tidings.channels import email, push
from tidings.channels.base import Channel, Node, Running
from tidings.settings import ConfigError

__all__ = ["CHANNELS", "NAMES", "start_enabled"]

# --8<-- [start:channels]
CHANNELS: Final[tuple[Channel, ...]] = (push.CHANNEL, email.CHANNEL)
# --8<-- [end:channels]
# The preference keys, in the order the API lists them.
NAMES: Final = tuple(channel.name for channel in CHANNELS)


def start_enabled(node: Node) -> tuple[dict[str, Running], list[Running]]:
    """The channels the settings turn on, started for `node` (by name), and everything to run:
    those and, when one of them asked for it, presence. A store without a method one of them
    needs is a ConfigError naming it, before anything runs."""
    on = [channel for channel in CHANNELS if channel.enabled(node.settings)]
    needs = [(f"the {channel.name} channel", channel.needs) for channel in on]
    running = {channel.name: channel.start(node) for channel in on}
    presence = node.presence_started
    if presence is not None:
        from tidings.channels.presence import NEEDS

        needs.append(("presence", NEEDS))
    for who, methods in needs:
        missing = [m for m in methods if not callable(getattr(node.store, m, None))]
        if missing:
            raise ConfigError(
                f"{who} needs what the store at TIDINGS_DATABASE_URL does not have: "
                f"{', '.join(missing)}"
            )
    every: list[Running] = [*running.values(), *([presence] if presence is not None else [])]
    return running, every
