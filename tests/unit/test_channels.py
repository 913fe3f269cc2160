"""The channel registry: what runs is what the settings turn on, each channel's store needs are
the ones its code calls, a new channel is one registry entry, and preferences keep their shape."""

from __future__ import annotations

import ast
import asyncio
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from fastapi import APIRouter

from tests.support import make_token
from tests.unit.conftest import unit_settings
from tests.unit.fakes import FakeBus, FakeStore
from tidings.app import create_app
from tidings.channels import CHANNELS, NAMES, Loop, Node, Running, presence, registry
from tidings.channels.preferences import ChannelsIn, ChannelsOut
from tidings.clock import Clock
from tidings.hub import Hub
from tidings.metrics import Metrics
from tidings.models import Preferences
from tidings.service import Service
from tidings.settings import ConfigError, Settings
from tidings.store import Store
from tidings.store.common import decode_preferences, encode_preferences
from tidings.store.instrumented import InstrumentedStore

pytestmark = pytest.mark.anyio

ON = {
    "vapid_private_key": "pUjdga06cA-UH1YhY_9waCGgCo3cT6VZsGdr5iEch8k",
    "vapid_subject": "mailto:ops@tidings.test",
    "smtp_url": "smtp://127.0.0.1:25",
    "email_from": "n@app.example",
    "public_url": "https://app.example/t",
}
CHANNELS_DIR = Path(registry.__file__).parent
ENV = {"TIDINGS_SECRET": "s" * 32}


def store_calls(*files: Path) -> set[str]:
    """Every `<something>.store.<method>(…)` the code makes."""
    called: set[str] = set()
    for file in files:
        for node in ast.walk(ast.parse(file.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Attribute)
                and node.func.value.attr == "store"
            ):
                called.add(node.func.attr)
    return called


def test_each_channel_needs_exactly_what_its_code_calls_on_the_store() -> None:
    members = {name for name in dir(Store) if not name.startswith("_")}
    for channel in CHANNELS:
        code = sorted((CHANNELS_DIR / channel.name).glob("*.py"))
        assert code, f"channels/{channel.name}/ is the channel's folder"
        assert store_calls(*code) == set(channel.needs), channel.name
        assert set(channel.needs) <= members, channel.name
    assert store_calls(CHANNELS_DIR / "presence.py") == set(presence.NEEDS)
    assert NAMES == ("push", "email")
    assert len(set(NAMES)) == len(NAMES)


def serving(settings: Settings, store: FakeStore) -> Service:
    metrics = Metrics()
    return Service(settings, InstrumentedStore(store, metrics), FakeBus(), metrics=metrics)


def loop_names() -> set[str]:
    return {task.get_name() for task in asyncio.all_tasks()}


async def test_a_node_runs_the_channels_its_settings_turn_on_and_no_other() -> None:
    service = serving(unit_settings(), FakeStore())
    async with service.running():
        await asyncio.sleep(0)  # the loops have started
        assert service.channels == {}
        assert not loop_names() & {"tidings-push", "tidings-push-presence", "tidings-email"}
        assert service.hub.on_leave is None  # nobody listens for presence
    service = serving(unit_settings(**ON), FakeStore())
    async with service.running():
        await asyncio.sleep(0)
        assert set(service.channels) == {"push", "email"}
        assert {"tidings-push", "tidings-push-presence", "tidings-email"} <= loop_names()
        assert service.hub.on_leave is not None
    email_only = {k: v for k, v in ON.items() if not k.startswith("vapid")}
    service = serving(unit_settings(**email_only), FakeStore())
    async with service.running():
        await asyncio.sleep(0)
        assert set(service.channels) == {"email"}
        assert not loop_names() & {"tidings-push", "tidings-push-presence"}


class _Bare:
    """A store that has only what every store has (for this test: nothing of the channels')."""

    def __getattr__(self, name: str) -> Any:
        if name in ("after", "preferences", "position", "group_heads"):
            return getattr(FakeStore(), name)
        raise AttributeError(name)


def test_a_store_without_what_an_enabled_channel_needs_is_refused_by_name() -> None:
    settings = unit_settings(**ON)
    node = Node(settings, cast(Store, _Bare()), Hub(settings, Metrics()), Clock(), Metrics())
    with pytest.raises(ConfigError, match=r"the push channel needs .*: push_due, claim_push"):
        registry.start_enabled(node)
    # Off, it needs nothing.
    off = unit_settings()
    node = Node(off, cast(Store, _Bare()), Hub(off, Metrics()), Clock(), Metrics())
    assert registry.start_enabled(node) == ({}, [])


class Echo:
    """A channel as a new one is written (docs/architecture.md, "Channels"): a loop that
    reaches users, a route, and what it needs from the store."""

    name = "echo"
    needs: tuple[str, ...] = ("after",)

    def __init__(self) -> None:
        self.ran = asyncio.Event()

    def enabled(self, settings: Settings) -> bool:
        return settings.public_url != ""

    def check(self, settings: Settings) -> None:
        if self.enabled(settings) and not settings.public_url.startswith("https://"):
            raise ConfigError("TIDINGS_PUBLIC_URL must be https:// for echo")

    def start(self, node: Node) -> Running:
        channel = self

        class Run:
            def loops(self) -> Mapping[str, Loop]:
                return {"tidings-echo": self.run}

            async def run(self) -> None:
                assert await node.store.after("ann", 0, 10) == []
                channel.ran.set()
                await asyncio.Event().wait()

        return Run()

    def routers(self) -> Sequence[APIRouter]:
        router = APIRouter()

        @router.get("/notifications/echo")
        async def echo() -> dict[str, bool]:
            return {"echo": True}

        return (router,)

    def describe(self, schemas: dict[str, Any], settings: Settings) -> None:
        schemas["Echoed"] = {"type": "object"}


async def test_a_new_channel_is_one_registry_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    echo = Echo()
    monkeypatch.setattr(registry, "CHANNELS", (*registry.CHANNELS, echo))
    service = serving(unit_settings(public_url="https://app.example"), FakeStore())
    app = create_app(service.settings, service)
    async with service.running():
        async with asyncio.timeout(5):
            await echo.ran.wait()
        assert set(service.channels) == {"echo"}
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            answer = await client.get("/notifications/echo")
            assert (answer.status_code, answer.json()) == (200, {"echo": True})
            # Its fixed path wins over `/notifications/{seq}`, and a wrong method is a 405.
            assert (await client.delete("/notifications/echo")).status_code == 405
            schema = (await client.get("/openapi.json")).json()
            assert "Echoed" in schema["components"]["schemas"]
    # Off by its settings: no loop. Its settings are checked with everyone's.
    service = serving(unit_settings(), FakeStore())
    async with service.running():
        assert service.channels == {}
    with pytest.raises(ConfigError, match="https:// for echo"):
        Settings.from_env({**ENV, "TIDINGS_PUBLIC_URL": "http://app.example"})
    assert Settings.from_env({**ENV, "TIDINGS_PUBLIC_URL": "https://app.example"}).public_url


def test_stored_preferences_of_every_shape_read_the_same() -> None:
    # Rows written before channels were keyed by name list every channel; now only the ones off.
    everything_on = Preferences()
    assert decode_preferences("[]", '{"push":true,"email":true}') == everything_on
    assert decode_preferences("[]", "{}") == everything_on
    push_off = Preferences(muted_categories=("news",), channels_off=frozenset({"push"}))
    assert decode_preferences('["news"]', '{"push":false,"email":true}') == push_off
    muted, channels = encode_preferences(push_off)
    assert (json.loads(muted), json.loads(channels)) == (["news"], {"push": False})
    assert decode_preferences(muted, channels) == push_off
    # What a node of the release before reads from a row written now: `.get(name, True)`.
    old_reader = json.loads(encode_preferences(Preferences(channels_off=frozenset({"email"})))[1])
    assert (old_reader.get("push", True), old_reader.get("email", True)) == (True, False)


def test_the_api_shape_lists_every_registered_channel() -> None:
    assert Preferences(channels_off=frozenset({"email"})).to_json(NAMES) == {
        "muted_categories": [],
        "channels": {"push": True, "email": False},
    }
    assert list(ChannelsIn.model_fields) == list(ChannelsOut.model_fields) == list(NAMES)
    assert ChannelsIn.model_validate({"email": False}).model_dump() == {
        "push": True,
        "email": False,
    }
    with pytest.raises(ValueError, match="slack"):
        ChannelsIn.model_validate({"slack": True})
    with pytest.raises(ValueError, match="push"):
        ChannelsIn.model_validate({"push": "yes"})


async def test_the_preferences_routes_keep_their_shape() -> None:
    service = serving(unit_settings(), FakeStore())
    app = create_app(service.settings, service)
    headers = {"authorization": f"Bearer {make_token('ann')}"}
    transport = httpx.ASGITransport(app=app)
    async with (
        service.running(),
        httpx.AsyncClient(transport=transport, base_url="http://t", headers=headers) as client,
    ):
        defaults = {"muted_categories": [], "channels": {"push": True, "email": True}}
        assert (await client.get("/notifications/preferences")).json() == defaults
        body = {"muted_categories": ["news"], "channels": {"push": False}}
        put = await client.put("/notifications/preferences", json=body)
        expected = {"muted_categories": ["news"], "channels": {"push": False, "email": True}}
        assert (put.status_code, put.json()) == (200, expected)
        assert (await client.get("/notifications/preferences")).json() == expected
        assert (await service.store.preferences("ann")).allows("email")
        refused = await client.put("/notifications/preferences", json={"channels": {"sms": True}})
        assert refused.status_code == 422
        schema = (await client.get("/openapi.json")).json()["components"]["schemas"]
        assert schema["ChannelsIn"]["additionalProperties"] is False
        assert set(schema["ChannelsIn"]["properties"]) == {"push", "email"}
        assert schema["ChannelsOut"]["required"] == ["push", "email"]
