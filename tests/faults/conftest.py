"""The fault tests reuse the multi-node fixtures: nodes, PostgreSQL, a private Redis to stop."""

from __future__ import annotations

from tests.multinode.conftest import make_cluster, postgres_url, private_redis, tag

__all__ = ["make_cluster", "postgres_url", "private_redis", "tag"]
