"""`Settings.from_env`: pure code, tested in-process."""

from __future__ import annotations

import dataclasses

import pytest

from tests.support import tidings_env
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
    }
    assert Settings.from_env(environ).heartbeat == 15


def test_the_app_side_names_of_a_shared_env_file_are_accepted_and_ignored() -> None:
    # The guides' app settings live in the same .env as the server's.
    settings = from_env(url="https://tidings.example/", publisher_key="k1", publisher_keys="k1,k2")
    assert settings.publisher_keys == ("k1", "k2")
    assert not hasattr(settings, "url")


@pytest.mark.parametrize("name", ["publisher_keyz", "urls", "secrets", "heartbeats"])
def test_a_misspelled_setting_is_still_refused(name: str) -> None:
    message = refused(**{name: "1"})
    assert f"TIDINGS_{name.upper()} is not a tidings setting" in message


def test_the_test_harness_variables_are_ignored() -> None:
    # `eval "$(scripts/services up)"` exports TIDINGS_TEST_*; `tidings serve` in the same shell
    # must start (issue 22, item 7). No setting will ever be named TIDINGS_TEST_*.
    settings = from_env(
        test_postgres_url="postgresql://x",
        test_redis_url="redis://x",
        test_mongodb_url="mongodb://x",
        heartbeat="3",
    )
    assert settings.heartbeat == 3
    assert settings.database_url == Settings().database_url
    # Only that prefix: a near miss is still a misspelled setting.
    assert "TIDINGS_TESTS_X" in refused(tests_x="1")
    assert "TIDINGS_REQUIRE_SERVICES" in refused(require_services="1")


def test_a_setting_named_like_the_harness_prefix_cannot_exist() -> None:
    assert not any(f.name.startswith("test_") for f in dataclasses.fields(Settings))


def test_the_server_environment_of_the_tests_drops_the_harness_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TIDINGS_TEST_POSTGRES_URL", "postgresql://x")
    monkeypatch.setenv("TIDINGS_REQUIRE_SERVICES", "1")
    env = tidings_env("sqlite:///t.db")
    assert Settings.from_env(env).database_url == "sqlite:///t.db"


def test_without_require_secret_a_missing_secret_stays_empty() -> None:
    assert Settings.from_env({}, require_secret=False).secret == ""
    with pytest.raises(ConfigError, match="at least 32"):
        Settings.from_env({"TIDINGS_SECRET": "short"}, require_secret=False)


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
        "store_max_concurrency",
    ],
)
def test_every_limit_must_be_a_positive_integer(name: str) -> None:
    variable = f"TIDINGS_{name.upper()}"
    assert variable in refused(**{name: "0"})
    assert variable in refused(**{name: "-5"})
    assert variable in refused(**{name: "1.5"})
    assert variable in refused(**{name: "lots"})
    assert getattr(from_env(**{name: "7"}), name) == 7


@pytest.mark.parametrize("raw", ["-1", "61", "nan", "soon"])
def test_the_store_queue_timeout_is_a_number_of_seconds_up_to_a_minute(raw: str) -> None:
    assert "TIDINGS_STORE_QUEUE_TIMEOUT" in refused(store_queue_timeout=raw)


def test_sqlite_synchronous_is_normal_or_full() -> None:
    assert "TIDINGS_SQLITE_SYNCHRONOUS" in refused(sqlite_synchronous="OFF")
    assert from_env().sqlite_synchronous == "FULL"
    assert from_env(sqlite_synchronous="normal").sqlite_synchronous.upper() == "NORMAL"


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


# --- the edge: request heads and logs -----------------------------------------------------------


def test_head_and_log_settings_have_defaults_and_parse() -> None:
    default = from_env()
    assert (default.max_head_bytes, default.head_timeout) == (65536, 10.0)
    assert (default.log_format, default.log_level) == ("plain", "info")
    settings = from_env(
        max_head_bytes="8192", head_timeout="2.5", log_format="json", log_level="warning"
    )
    assert (settings.max_head_bytes, settings.head_timeout) == (8192, 2.5)
    assert (settings.log_format, settings.log_level) == ("json", "warning")


@pytest.mark.parametrize(
    ("variable", "raw"),
    [
        ("max_head_bytes", "100"),
        ("max_head_bytes", "lots"),
        ("head_timeout", "0"),
        ("head_timeout", "-1"),
        ("backlog", "0"),
        ("backlog", "70000"),
        ("log_format", "xml"),
        ("log_level", "loud"),
    ],
)
def test_bad_head_and_log_settings_name_the_variable(variable: str, raw: str) -> None:
    assert f"TIDINGS_{variable.upper()}" in refused(**{variable: raw})


@pytest.mark.parametrize(
    ("variable", "raw"),
    [
        ("bus_url", "redis://[x"),
        ("bus_url", "redis://cache:port/0"),
        ("database_url", "postgresql://u:p@[db/tidings"),
        ("database_url", "mongodb://db\uff03x/tidings"),
        ("cors_origins", "https://app.example,https://[x"),
    ],
)
def test_a_url_setting_the_url_parser_rejects_names_the_variable(variable: str, raw: str) -> None:
    message = refused(**{variable: raw})
    assert f"TIDINGS_{variable.upper()} is not a valid URL" in message
    assert "u:p" not in message  # a password in the URL stays out of the message


# The email digest.

EMAIL = {
    "smtp_url": "smtp://127.0.0.1:2525",
    "email_from": "Example <n@app.example>",
    "public_url": "https://app.example/tidings",
}


def test_email_is_off_without_an_smtp_url_or_with_email_after_0() -> None:
    assert not from_env().email_enabled
    # Off: the other email settings are not checked at all.
    assert not from_env(smtp_url="smtp://h", email_after="0").email_enabled
    on = from_env(**EMAIL, email_after="0.05")
    assert on.email_enabled
    assert on.email_after == 0.05


@pytest.mark.parametrize(
    ("variables", "names"),
    [
        ({"smtp_url": "http://mail.example"}, "TIDINGS_SMTP_URL"),
        ({"smtp_url": "smtp://"}, "TIDINGS_SMTP_URL"),
        ({"smtp_url": "smtp://h:99999"}, "TIDINGS_SMTP_URL"),
        ({"smtp_url": "smtps://h?starttls=1"}, "TIDINGS_SMTP_URL"),
        ({"smtp_url": "smtp://h?starttls=maybe"}, "TIDINGS_SMTP_URL"),
        ({"smtp_url": "smtp://h?tls=1"}, "TIDINGS_SMTP_URL"),
        ({"email_from": ""}, "TIDINGS_EMAIL_FROM"),
        ({"email_from": "nobody"}, "TIDINGS_EMAIL_FROM"),
        ({"public_url": ""}, "TIDINGS_PUBLIC_URL"),
        ({"public_url": "app.example"}, "TIDINGS_PUBLIC_URL"),
        ({"public_url": "ftp://app.example"}, "TIDINGS_PUBLIC_URL"),
        ({"email_after": "-1"}, "TIDINGS_EMAIL_AFTER"),
        ({"email_after": "soon"}, "TIDINGS_EMAIL_AFTER"),
        ({"email_interval": "0"}, "TIDINGS_EMAIL_INTERVAL"),
        ({"smtp_timeout": "60", "email_lease": "120"}, "TIDINGS_EMAIL_LEASE"),
        ({"email_max_items": "0"}, "TIDINGS_EMAIL_MAX_ITEMS"),
    ],
)
def test_a_bad_email_setting_is_one_line_naming_it(variables: dict[str, str], names: str) -> None:
    assert names in refused(**{**EMAIL, **variables})


def test_the_smtp_url_forms() -> None:
    from tidings.channels.email.mailer import SmtpTarget

    assert SmtpTarget.parse("smtp://relay") == SmtpTarget("relay", 25)
    assert SmtpTarget.parse("smtp://u:p%40ss@h?starttls=1") == SmtpTarget(
        "h", 587, starttls=True, username="u", password="p@ss"
    )
    assert SmtpTarget.parse("smtps://u:p@h?verify=0") == SmtpTarget(
        "h", 465, implicit_tls=True, username="u", password="p", verify=False
    )
    assert SmtpTarget.parse("smtp://h:2525").port == 2525


def test_the_drain_reconnect_rate_is_a_count_per_second_or_zero() -> None:
    assert from_env().drain_reconnects_per_s == 5000
    assert from_env(drain_reconnects_per_s="0").drain_reconnects_per_s == 0
    assert from_env(drain_reconnects_per_s="800").drain_reconnects_per_s == 800
    assert "TIDINGS_DRAIN_RECONNECTS_PER_S" in refused(drain_reconnects_per_s="-1")
    assert "TIDINGS_DRAIN_RECONNECTS_PER_S" in refused(drain_reconnects_per_s="fast")
