"""Prometheus metrics, in a registry of the app's own (several apps may share a process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["Metrics"]

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.streams_open = Gauge("tidings_streams_open", "Open SSE streams", registry=r)
        self.published = Counter(
            "tidings_notifications_published", "Notifications stored by publishers", registry=r
        )
        self.delivered = Counter(
            "tidings_notifications_delivered",
            "Notification events written to streams (live and replayed)",
            registry=r,
        )
        self.latency = Histogram(
            "tidings_delivery_latency_seconds",
            "From the notification's commit to its write on a live stream",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.disconnects = Counter(
            "tidings_stream_disconnects",
            "Streams that ended, by reason: client, slow, expired, drain, error",
            ["reason"],
            registry=r,
        )
        self.resets = Counter(
            "tidings_stream_resets",
            "reset events sent, by reason: invalid, pruned, too_far, future",
            ["reason"],
            registry=r,
        )
        self.store_queries = Counter(
            "tidings_store_queries", "Store operations, by operation", ["op"], registry=r
        )
        self.refused = Counter(
            "tidings_streams_refused",
            "Stream requests refused, by reason: unauthorized, limit, draining, store",
            ["reason"],
            registry=r,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
