"""`Settings.from_env`: pure code, tested in-process."""

from __future__ import annotations

import dataclasses

import pytest

from tidings.settings import ConfigError, Settings

SECRET = "s" * 32


def environ(**variables: str) -> dict[str, str]:
    return {"TIDINGS_SECRET": SECRET, **{f"TIDINGS_{k.upper()}": v for k, v in variables.items()}}


def from_env(**variables: str) -> Settings:
    return Settings.from_env(environ(**variables))


def refused(**variables: str) -> str:
    with pytest.raises(ConfigError) as info:
        from_env(**variables)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_defaults_follow_the_contract() -> None:
    settings = from_env()
    assert settings.database_url == "sqlite:///tidings.db"
    assert settings.bus_url == "local://"
    assert settings.heartbeat == 15
    assert settings.retention_days == 90
    assert settings.publisher_keys == ()
    assert settings.cors_origins == ()
    assert settings.allow_query_token is False
    assert settings.demo is False


def test_settings_are_frozen() -> None:
    settings = from_env()
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.heartbeat = 1  # type: ignore[misc]


def test_other_environment_variables_are_ignored() -> None:
    environ = {
        "TIDINGS_SECRET": SECRET,
        "PATH": "/usr/bin",
        "HOME": "/root",
        "tidings_heartbeat": "nonsense",  # not our prefix: environment names are case-sensitive
        "TIDINGS_TEST_POSTGRES_URL": "postgresql://x",  # the test suite's own
        "TIDINGS_REQUIRE_SERVICES": "1",
        "TIDINGS_DEBUG_STALLS": "5",  # a debugging aid (tidings.stalls), not a setting
    }
    assert Settings.from_env(environ).heartbeat == 15


def test_values_are_parsed_by_type() -> None:
    settings = from_env(
        database_url="sqlite:////var/lib/tidings/t.db",
        heartbeat="2.5",
        retention_days="7",
        max_streams_per_user=" 5 ",
        publisher_keys="one, two,,three ",
        cors_origins="https://app.example,http://localhost:3000",
        allow_query_token="1",
    )
    assert settings.database_url == "sqlite:////var/lib/tidings/t.db"
    assert settings.heartbeat == 2.5
    assert settings.retention_days == 7
    assert settings.max_streams_per_user == 5
    assert settings.publisher_keys == ("one", "two", "three")
    assert settings.cors_origins == ("https://app.example", "http://localhost:3000")
    assert settings.allow_query_token is True


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        *[("1", True), ("true", True), ("YES", True), ("on", True)],
        *[("0", False), ("false", False), ("No", False), ("off", False), ("", False)],
    ],
)
def test_booleans(raw: str, value: bool) -> None:
    assert from_env(allow_query_token=raw).allow_query_token is value


def test_a_bad_boolean_names_the_variable() -> None:
    message = refused(allow_query_token="maybe")
    assert "TIDINGS_ALLOW_QUERY_TOKEN" in message
    assert "maybe" in message


def test_a_missing_secret_is_an_error() -> None:
    with pytest.raises(ConfigError, match="TIDINGS_SECRET is required"):
        Settings.from_env({})
    with pytest.raises(ConfigError, match="TIDINGS_SECRET is required"):
        Settings.from_env({"TIDINGS_SECRET": ""})


def test_a_short_secret_is_an_error() -> None:
    assert "at least 32" in refused(secret="too-short")


def test_demo_generates_a_secret_and_a_publisher_key() -> None:
    one = Settings.from_env({}, demo=True)
    two = Settings.from_env({}, demo=True)
    assert one.demo is True
    assert len(one.secret) >= 32
    assert one.secret != two.secret
    assert len(one.publisher_keys) == 1
    assert one.publisher_keys != two.publisher_keys


def test_demo_keeps_a_configured_secret_and_keys() -> None:
    settings = Settings.from_env(environ(publisher_keys="mine"), demo=True)
    assert settings.secret == SECRET
    assert settings.publisher_keys == ("mine",)


def test_an_unknown_variable_is_an_error() -> None:
    message = refused(foo="1")
    assert "TIDINGS_FOO" in message
    assert "not a tidings setting" in message


def test_demo_is_a_flag_not_a_variable() -> None:
    assert "TIDINGS_DEMO" in refused(demo="1")


@pytest.mark.parametrize("raw", ["abc", "", "1,5", "15s"])
def test_a_heartbeat_that_is_not_a_number_names_the_variable(raw: str) -> None:
    message = refused(heartbeat=raw)
    assert "TIDINGS_HEARTBEAT" in message
    assert "float" in message or "number" in message


@pytest.mark.parametrize("raw", ["0", "-1", "nan", "inf", "-inf"])
def test_a_heartbeat_must_be_a_positive_finite_number(raw: str) -> None:
    assert "TIDINGS_HEARTBEAT" in refused(heartbeat=raw)


@pytest.mark.parametrize("raw", ["0", "-3", "nan", "inf"])
def test_retention_must_be_a_positive_finite_number(raw: str) -> None:
    assert "TIDINGS_RETENTION_DAYS" in refused(retention_days=raw)


@pytest.mark.parametrize(
    "name",
    [
        "max_message_bytes",
        "max_link_bytes",
        "max_kind_bytes",
        "max_data_bytes",
        "max_user_ids",
        "max_body_bytes",
        "max_token_ttl",
        "max_streams_per_user",
        "stream_queue",
        "stream_queue_bytes",
        "replay_max",
        "retry_ms",
        "drain_retry_max_ms",
        "prune_batch",
    ],
)
def test_every_limit_must_be_a_positive_integer(name: str) -> None:
    variable = f"TIDINGS_{name.upper()}"
    assert variable in refused(**{name: "0"})
    assert variable in refused(**{name: "-5"})
    assert variable in refused(**{name: "1.5"})
    assert variable in refused(**{name: "lots"})
    assert getattr(from_env(**{name: "7"}), name) == 7


@pytest.mark.parametrize("raw", ["0", "-1", "nan"])
def test_the_prune_interval_must_be_positive(raw: str) -> None:
    assert "TIDINGS_PRUNE_INTERVAL" in refused(prune_interval=raw)


@pytest.mark.parametrize(
    "origin", ["app.example", "https://app.example/", "ftp://app.example", "*", "null"]
)
def test_a_cors_origin_must_be_an_origin(origin: str) -> None:
    message = refused(cors_origins=origin)
    assert "TIDINGS_CORS_ORIGINS" in message
    assert origin in message


def test_an_error_message_is_one_line_even_for_a_multiline_value() -> None:
    message = refused(heartbeat="1\n2")
    assert "TIDINGS_HEARTBEAT" in message
