"""The operator's routes: liveness, readiness, Prometheus metrics. No credential (they are
for the load balancer and the scraper; keep them off the public network)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse, PlainTextResponse

from tidings.http.deps import ServiceDep
from tidings.http.schemas import ReadyOut
from tidings.store import StoreUnavailable

__all__ = ["operations_router"]

READY_TIMEOUT = 2.0

operations_router = APIRouter(tags=["operations"])


@operations_router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@operations_router.get(
    "/readyz",
    response_model=ReadyOut,
    responses={503: {"description": "not ready: the failing check", "model": ReadyOut}},
)
async def readyz(service: ServiceDep) -> Response:
    """Ready when the store answers and the bus subscription is live."""
    checks: dict[str, str] = {}
    try:
        async with asyncio.timeout(READY_TIMEOUT):
            await service.store.ping()
        checks["store"] = "ok"
    except (StoreUnavailable, TimeoutError) as exc:
        checks["store"] = f"unavailable: {exc}" if str(exc) else "unavailable: timeout"
    checks["bus"] = "ok" if service.bus.ready() else "unavailable"
    if service.hub.draining:
        checks["node"] = "draining"
    ready = all(v == "ok" for v in checks.values())
    return JSONResponse(
        {"status": "ready" if ready else "not_ready", "checks": checks},
        status_code=200 if ready else 503,
    )


@operations_router.get(
    "/metrics",
    response_class=PlainTextResponse,
    responses={200: {"description": "Prometheus text format", "content": {"text/plain": {}}}},
)
async def metrics(service: ServiceDep) -> Response:
    return Response(service.metrics.render(), media_type="text/plain; version=0.0.4")
