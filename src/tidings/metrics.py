"""Prometheus metrics, in a registry of the app's own (several apps may share a process)."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from tidings.bus.base import Tally
from tidings.clock import now_ms

__all__ = ["Metrics"]

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Deliveries:
    """The per-delivery figures, counted on every frame a stream writes: plain numbers (no lock,
    no label lookup; the event loop is their only writer), turned into a counter and a histogram
    only when /metrics is scraped."""

    def __init__(self) -> None:
        self.delivered = 0
        self.latency_sum = 0.0
        # One count per bucket (not cumulative), the last one past the largest bound.
        self.latency_counts = [0] * (len(LATENCY_BUCKETS) + 1)

    def live(self, created_ms: int) -> None:
        """A live delivery of a notification committed at `created_ms`."""
        latency_s = max(0.0, (now_ms() - created_ms) / 1000)
        self.delivered += 1
        self.latency_sum += latency_s
        self.latency_counts[bisect_left(LATENCY_BUCKETS, latency_s)] += 1

    def replayed(self, count: int) -> None:
        self.delivered += count

    def collect(self) -> Iterator[Metric]:
        yield CounterMetricFamily(
            "tidings_notifications_delivered",
            "Notification events written to streams (live and replayed)",
            value=self.delivered,
        )
        cumulative, buckets = 0, []
        for bound, count in zip((*LATENCY_BUCKETS, float("inf")), self.latency_counts, strict=True):
            cumulative += count
            buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
        yield HistogramMetricFamily(
            "tidings_delivery_latency_seconds",
            "From the notification's commit to its write on a live stream",
            buckets=buckets,
            sum_value=self.latency_sum,
        )


class BusReceived(Tally):
    """The user events this node received from the bus (tidings.bus.base.Tally)."""

    __slots__ = ("routed",)

    def __init__(self) -> None:
        super().__init__()
        # The bus's count of users it is subscribed for, on the buses that route per user.
        self.routed: Callable[[], int] | None = None

    def collect(self) -> Iterator[Metric]:
        yield CounterMetricFamily(
            "tidings_bus_announcements_received",
            "User events this node received from the bus (per-user routing: its own users')",
            value=self.count,
        )
        if self.routed is not None:
            yield GaugeMetricFamily(
                "tidings_bus_users_routed",
                "Users this node's bus subscription covers (with a stream, or lingering)",
                value=self.routed(),
            )


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.streams_open = Gauge("tidings_streams_open", "Open SSE streams", registry=r)
        self.published = Counter(
            "tidings_notifications_published", "Notifications stored by publishers", registry=r
        )
        self.deliveries = Deliveries()
        r.register(self.deliveries)
        self.bus_received = BusReceived()
        r.register(self.bus_received)
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

        # Scheduled notifications (deliver_at) and expiry.
        self.scheduled = Counter(
            "tidings_scheduled",
            "Scheduled notifications accepted (one per user), to deliver later",
            registry=r,
        )
        self.scheduled_delivered = Counter(
            "tidings_scheduled_delivered",
            "Scheduled notifications stored and announced when due, by this node",
            registry=r,
        )
        self.scheduled_cancelled = Counter(
            "tidings_scheduled_cancelled",
            "Scheduled notifications cancelled before they were due (one per user)",
            registry=r,
        )
        self.scheduled_skipped = Counter(
            "tidings_scheduled_skipped",
            "Scheduled notifications not stored when due, by reason: muted",
            ["reason"],
            registry=r,
        )
        self.expired_events = Counter(
            "tidings_expired_events",
            "notifications-expired events sent to this node's streams (one per user per sweep)",
            registry=r,
        )
        # Users who are away: one family per outcome, a `channel` label per way of reaching
        # them (email here; push the same), so one dashboard query covers both.
        self.away_sent = Counter(
            "tidings_away_sent",
            "Messages sent to users who are away, by channel: email (one per digest), push",
            ["channel"],
            registry=r,
        )
        self.away_failed = Counter(
            "tidings_away_failed",
            "Attempts that failed and will be retried, by channel",
            ["channel"],
            registry=r,
        )
        self.away_skipped = Counter(
            "tidings_away_skipped",
            "Notifications not sent, by channel and reason: seen, read, archived, expired, "
            "muted, unsubscribed",
            ["channel", "reason"],
            registry=r,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
