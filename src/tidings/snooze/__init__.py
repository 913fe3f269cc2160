"""Snooze (design v3): a user hides notifications until a time; they come back unread and
unseen, once, live on every node. `wake` holds the work, `routes` the HTTP edge."""

from __future__ import annotations
