"""The `tidings` command as a user runs it: help, token, send, configuration errors, demo mode."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import (
    HTTP,
    SECRET,
    SENTINEL,
    Server,
    free_port,
    make_token,
    open_stream,
    run_cli,
    serving,
    tidings_env,
)

pytestmark = pytest.mark.anyio


@pytest.fixture
def env(database_url: str) -> dict[str, str]:
    return tidings_env(database_url)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    # One .env shared with the app: the app-side names of the guides are in it too.
    app_side = {"TIDINGS_URL": "http://127.0.0.1:1/", "TIDINGS_PUBLISHER_KEY": "test-publisher-key"}
    with serving(tmp_path_factory.mktemp("cli"), app_side) as started:
        yield started


def assert_one_line_error(result: subprocess.CompletedProcess[str], *words: str) -> str:
    """A non-zero exit, one line on stderr starting with `tidings:`, and no traceback."""
    assert result.returncode != 0, result
    line = result.stderr.strip()
    assert "Traceback" not in result.stderr, result.stderr
    assert "\n" not in line, result.stderr
    assert line.startswith("tidings: "), line
    for word in words:
        assert word in line, line
    return line


# --- help ----------------------------------------------------------------------------------------


def test_tidings_help_explains_the_commands(env: dict[str, str]) -> None:
    result = run_cli(env, "--help")
    assert result.returncode == 0
    out = result.stdout
    assert "Server-Sent Events" in out
    for command in ("serve", "send", "token"):
        assert re.search(rf"^\s+{command}\s+\w", out, re.MULTILINE), out
    assert "TIDINGS_SECRET" in out


def test_no_command_is_a_usage_error(env: dict[str, str]) -> None:
    result = run_cli(env)
    assert result.returncode == 2
    assert "usage: tidings" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("serve", ["--host", "--port", "--workers", "--demo", "TIDINGS_BUS_URL"]),
        ("send", ["USER_ID", "MESSAGE", "--link", "--kind", "Store a notification"]),
        ("token", ["USER_ID", "--ttl", "TIDINGS_SECRET", "seconds"]),
    ],
)
def test_each_command_explains_itself(
    env: dict[str, str], command: str, expected: list[str]
) -> None:
    result = run_cli(env, command, "--help")
    assert result.returncode == 0, result.stderr
    assert f"usage: tidings {command}" in result.stdout
    for word in expected:
        assert word in result.stdout, (word, result.stdout)


def test_the_installed_command_runs(env: dict[str, str]) -> None:
    # The console script of pyproject.toml, next to the interpreter of the virtual environment.
    script = Path(sys.executable).parent / "tidings"
    if not script.exists():
        pytest.skip(f"{script} is not installed (pip install -e .)")
    result = subprocess.run(
        [str(script), "--help"], env=env, capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 0
    assert "usage: tidings" in result.stdout


# --- token ---------------------------------------------------------------------------------------


def test_token_prints_a_token_the_server_accepts(server: Server) -> None:
    result = run_cli(server.env, "token", "cli-token-user")
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    assert re.fullmatch(r"[\w-]+\.[\w-]+\.[\w-]+", token), result.stdout
    response = HTTP.get(
        f"{server.url}/notifications/unread-count", headers={"authorization": f"Bearer {token}"}
    )
    assert response.status_code == 200
    assert response.json() == {"unread": 0, "unseen": 0, "last_seq": 0, "categories": {}}
    session = HTTP.post(f"{server.url}/notifications/session", json={"token": token})
    assert session.json()["user_id"] == "cli-token-user"


def test_token_ttl_sets_the_expiry(server: Server) -> None:
    import time

    import jwt

    result = run_cli(server.env, "token", "42", "--ttl", "120")
    assert result.returncode == 0, result.stderr
    claims = jwt.decode(result.stdout.strip(), SECRET, algorithms=["HS256"])
    assert claims["sub"] == "42"
    assert 100 <= claims["exp"] - time.time() <= 125


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["token", "42", "--ttl", "0"], ["--ttl"]),
        (["token", ""], ["user id"]),
    ],
)
def test_token_refuses_bad_arguments(
    env: dict[str, str], args: list[str], words: list[str]
) -> None:
    assert_one_line_error(run_cli(env, *args), *words)


def test_token_without_a_secret_is_one_line(env: dict[str, str]) -> None:
    del env["TIDINGS_SECRET"]
    assert_one_line_error(run_cli(env, "token", "42"), "TIDINGS_SECRET")


def test_serve_with_smtp_but_no_public_url_is_one_line(env: dict[str, str]) -> None:
    env.update(TIDINGS_SMTP_URL="smtp://127.0.0.1:2525", TIDINGS_EMAIL_FROM="n@app.example")
    assert_one_line_error(run_cli(env, "serve", "--port", "1"), "TIDINGS_PUBLIC_URL")


# --- send ----------------------------------------------------------------------------------------


async def test_send_stores_and_an_open_stream_receives_it_live(server: Server) -> None:
    user = "cli-send-live"
    async with open_stream(server.url, make_token(user)) as stream:
        assert stream.status == 200
        result = await asyncio.to_thread(
            run_cli,
            server.env,
            "send",
            user,
            "Your order shipped",
            "--link",
            "https://shop.example/orders/7",
            "--kind",
            "order.shipped",
            "--data",
            '{"order": 7}',
        )
        assert result.returncode == 0, result.stderr
        assert result.stderr == ""  # a server shares the database: no warning
        printed = json.loads(result.stdout)
        assert printed["id"] == 1
        assert printed["user_id"] == user
        [got] = await stream.notifications(1, timeout=10)
        assert got == printed
        assert got["link"] == "https://shop.example/orders/7"
        assert got["kind"] == "order.shipped"
        assert got["data"] == {"order": 7}
    listed = await asyncio.to_thread(
        HTTP.get,
        f"{server.url}/notifications",
        headers={"authorization": f"Bearer {make_token(user)}"},
    )
    assert listed.json() == [printed]


def test_send_with_an_idempotency_key_stores_once(server: Server) -> None:
    user = "cli-send-idempotent"
    first = run_cli(server.env, "send", user, "once", "--idempotency-key", "k-cli-1")
    again = run_cli(server.env, "send", user, "once", "--idempotency-key", "k-cli-1")
    assert first.returncode == again.returncode == 0
    assert json.loads(first.stdout) == json.loads(again.stdout)
    count = HTTP.get(
        f"{server.url}/notifications/unread-count",
        headers={"authorization": f"Bearer {make_token(user)}"},
    )
    assert count.json() == {"unread": 1, "unseen": 1, "last_seq": 1, "categories": {}}
    reused = run_cli(server.env, "send", user, "different", "--idempotency-key", "k-cli-1")
    assert_one_line_error(reused, "k-cli-1", "different publish")
    assert HTTP.get(
        f"{server.url}/notifications/unread-count",
        headers={"authorization": f"Bearer {make_token(user)}"},
    ).json() == {"unread": 1, "unseen": 1, "last_seq": 1, "categories": {}}


def test_send_needs_no_secret(server: Server) -> None:
    env = dict(server.env)
    del env["TIDINGS_SECRET"]
    result = run_cli(env, "send", "cli-no-secret", "hi")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["user_id"] == "cli-no-secret"


def test_send_to_an_existing_database_with_no_server_warns_where_it_stored(
    env: dict[str, str], database_url: str
) -> None:
    path = Path(database_url.removeprefix("sqlite:///"))
    path.touch()
    result = run_cli(env, "send", "offline-user", "stored for later")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["id"] == 1
    warning = result.stderr.strip()
    assert "\n" not in warning
    assert warning.startswith("tidings: stored in ")
    assert str(path) in warning
    assert "no running server" in warning


def test_send_to_a_fresh_database_refuses_and_creates_nothing(
    env: dict[str, str], tmp_path: Path
) -> None:
    # As a user runs it from another folder: the default relative URL, resolved there.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env["TIDINGS_DATABASE_URL"] = "sqlite:///tidings.db"
    result = subprocess.run(
        [sys.executable, "-m", "tidings", "send", "u", "hi"],
        env=env,
        cwd=elsewhere,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    line = assert_one_line_error(result, str(elsewhere / "tidings.db"), "no running server")
    assert result.returncode == 2
    assert result.stdout == ""
    assert "TIDINGS_DATABASE_URL" in line
    assert list(elsewhere.iterdir()) == []


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["send", "u", "hi", "--link", "javascript:alert(1)"], ["link"]),
        (["send", "u", ""], ["message"]),
        (["send", "u", "hi", "--data", "{not json"], ["--data"]),
        (["send", "", "hi"], ["user_id"]),
    ],
)
def test_send_refuses_bad_input_in_one_line_and_stores_nothing(
    env: dict[str, str], database_url: str, args: list[str], words: list[str]
) -> None:
    assert_one_line_error(run_cli(env, *args), *words)
    path = database_url.removeprefix("sqlite:///")
    if Path(path).exists():
        import sqlite3

        with sqlite3.connect(path) as conn:
            assert conn.execute("SELECT count(*) FROM notifications").fetchone() == (0,)


@pytest.mark.parametrize("link", ["http://[x", "https://[", "http://a]b/", "http://\uff03x/"])
def test_send_with_a_link_the_url_parser_rejects_is_one_line_and_exit_2(
    env: dict[str, str], link: str
) -> None:
    result = run_cli(env, "send", "u", "hi", "--link", link)
    assert_one_line_error(result, "link", "URL")
    assert result.returncode == 2


def test_send_to_a_database_in_a_missing_folder_is_one_line(
    env: dict[str, str], tmp_path: Path
) -> None:
    env["TIDINGS_DATABASE_URL"] = f"sqlite:///{tmp_path / 'missing' / 'tidings.db'}"
    assert_one_line_error(run_cli(env, "send", "u", "hi"), "missing")


# --- configuration errors of serve ---------------------------------------------------------------


def serve(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """`tidings serve` that is expected to refuse to start (a timeout fails the test)."""
    port = str(free_port())
    return run_cli(env, "serve", "--port", port, *args, timeout=30)


def test_serve_without_a_secret_is_one_line(env: dict[str, str]) -> None:
    del env["TIDINGS_SECRET"]
    assert_one_line_error(serve(env), "TIDINGS_SECRET")


def test_serve_with_a_short_secret_is_one_line(env: dict[str, str]) -> None:
    env["TIDINGS_SECRET"] = "short"
    assert_one_line_error(serve(env), "TIDINGS_SECRET", "32")


def test_serve_without_publisher_keys_is_one_line(env: dict[str, str]) -> None:
    del env["TIDINGS_PUBLISHER_KEYS"]
    assert_one_line_error(serve(env), "TIDINGS_PUBLISHER_KEYS")


@pytest.mark.parametrize("value", ["abc", "0"])
def test_serve_with_a_bad_heartbeat_is_one_line(env: dict[str, str], value: str) -> None:
    env["TIDINGS_HEARTBEAT"] = value
    assert_one_line_error(serve(env), "TIDINGS_HEARTBEAT")


def test_serve_with_an_unknown_setting_is_one_line(env: dict[str, str]) -> None:
    env["TIDINGS_FOO"] = "1"
    assert_one_line_error(serve(env), "TIDINGS_FOO")


def test_serve_with_an_unknown_database_scheme_is_one_line(env: dict[str, str]) -> None:
    env["TIDINGS_DATABASE_URL"] = "oracle://db/x"
    assert_one_line_error(serve(env), "TIDINGS_DATABASE_URL")


@pytest.mark.parametrize(
    ("variable", "url"),
    [("TIDINGS_BUS_URL", "redis://[x"), ("TIDINGS_DATABASE_URL", "postgresql://db:port/x")],
)
def test_serve_and_send_with_a_url_the_parser_rejects_are_one_line(
    env: dict[str, str], variable: str, url: str
) -> None:
    env[variable] = url
    assert_one_line_error(serve(env), variable)
    assert_one_line_error(run_cli(env, "send", "u", "hi"), variable)


def test_serve_with_a_database_in_a_missing_folder_is_one_line(
    env: dict[str, str], tmp_path: Path
) -> None:
    env["TIDINGS_DATABASE_URL"] = f"sqlite:///{tmp_path / 'missing' / 'tidings.db'}"
    result = serve(env)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr + result.stdout
    # Uvicorn has started logging by then: the cause is one line of its log.
    [cause] = [line for line in result.stderr.splitlines() if "tidings:" in line]
    assert "missing" in cause


def test_serve_with_zero_workers_is_one_line(env: dict[str, str]) -> None:
    assert_one_line_error(serve(env, "--workers", "0"), "--workers")


def test_serve_with_workers_on_the_in_memory_store_is_one_line(env: dict[str, str]) -> None:
    env["TIDINGS_DATABASE_URL"] = "memory://"
    assert_one_line_error(serve(env, "--workers", "2"), "--workers", "memory://")


def test_serve_on_a_port_in_use_is_one_line_before_any_key(env: dict[str, str]) -> None:
    # --demo would print a generated secret and publisher key: none of it may come first.
    del env["TIDINGS_SECRET"]
    del env["TIDINGS_PUBLISHER_KEYS"]
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        result = run_cli(env, "serve", "--demo", "--port", port, timeout=30)
    assert_one_line_error(result, f"127.0.0.1:{port}", "address already in use", "--port")
    assert result.returncode == 2
    assert result.stdout == ""


@pytest.mark.parametrize("port", ["eighty", "0", "99999", "-1", "65536"])
def test_serve_with_a_bad_port_is_a_usage_error(env: dict[str, str], port: str) -> None:
    result = run_cli(env, "serve", "--port", port)
    assert result.returncode == 2
    assert "--port" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_bench_outside_a_checkout_is_one_line(env: dict[str, str], tmp_path: Path) -> None:
    # An installed (non-editable) tidings: the package alone, without the repository around it.
    import tidings

    site = tmp_path / "site"
    shutil.copytree(Path(tidings.__file__).parent, site / "tidings")
    env["PYTHONPATH"] = str(site)
    result = subprocess.run(
        [sys.executable, "-m", "tidings", "bench", "--quick"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert_one_line_error(result, "checkout", "bench/run")
    assert result.returncode == 2


# --- demo mode -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """`serve --demo` as on a fresh checkout: no secret, no publisher key configured."""
    folder = tmp_path_factory.mktemp("demo")
    env = tidings_env(f"sqlite:///{folder / 'tidings.db'}")
    del env["TIDINGS_SECRET"]
    del env["TIDINGS_PUBLISHER_KEYS"]
    started = Server(env=env, log_path=folder / "server.log")
    started.start("--demo")
    yield started
    started.close()


def test_demo_prints_its_url_and_serves_the_page(demo: Server) -> None:
    assert f"http://127.0.0.1:{demo.port}/" in demo.log()
    assert "publisher key:" in demo.log()
    page = HTTP.get(f"{demo.url}/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "tidings" in page.text
    assert "/demo/login" in page.text or "/static/" in page.text


def demo_login(demo: Server, user: str) -> str:
    response = HTTP.post(f"{demo.url}/demo/login", json={"user_id": user})
    assert response.status_code == 200, response.text
    cookie = response.cookies["tidings_session"]
    assert "httponly" in response.headers["set-cookie"].lower()
    return cookie


async def test_demo_login_and_send_reach_the_stream(demo: Server) -> None:
    alice = demo_login(demo, "alice")
    bob = demo_login(demo, "bob")
    async with (
        open_stream(demo.url, None, headers={"cookie": f"tidings_session={alice}"}) as a,
        open_stream(demo.url, None, headers={"cookie": f"tidings_session={bob}"}) as b,
    ):
        assert (a.status, b.status) == (200, 200)
        sent = await asyncio.to_thread(
            HTTP.post,
            f"{demo.url}/demo/send",
            json={"user_id": "alice", "message": "hello from the demo"},
            headers={"cookie": f"tidings_session={bob}", "origin": demo.url},
        )
        assert sent.status_code == 201, sent.text
        [got] = await a.notifications(1)
        assert got["message"] == "hello from the demo"
        assert got["user_id"] == "alice"
        assert got["id"] == sent.json()["id"]
        # Bob's own notification is the sentinel: had alice's reached him, it would come first.
        to_bob = await asyncio.to_thread(
            HTTP.post,
            f"{demo.url}/demo/send",
            json={"user_id": "bob", "message": SENTINEL},
            headers={"cookie": f"tidings_session={alice}", "origin": demo.url},
        )
        assert to_bob.status_code == 201, to_bob.text
        await b.expect_sentinel()
    listed = await asyncio.to_thread(
        HTTP.get, f"{demo.url}/notifications", headers={"cookie": f"tidings_session={alice}"}
    )
    assert [n["message"] for n in listed.json()] == ["hello from the demo"]


def test_demo_refuses_an_unknown_user_and_bad_input(demo: Server) -> None:
    for path, body in (
        ("/demo/login", {"user_id": "mallory"}),
        ("/demo/send", {"user_id": "mallory", "message": "hi"}),
        ("/demo/send", {"user_id": "alice", "message": ""}),
        ("/demo/send", {"user_id": "alice", "message": "hi", "link": "javascript:alert(1)"}),
    ):
        response = HTTP.post(f"{demo.url}{path}", json=body)
        assert response.status_code == 422, (path, body, response.text)
        assert set(response.json()) == {"error", "detail"}


def test_demo_login_from_a_foreign_origin_is_refused(demo: Server) -> None:
    response = HTTP.post(
        f"{demo.url}/demo/login",
        json={"user_id": "alice"},
        headers={"origin": "https://evil.example"},
    )
    assert response.status_code == 403
    assert "set-cookie" not in response.headers


def test_demo_routes_do_not_exist_without_demo(server: Server) -> None:
    assert HTTP.post(f"{server.url}/demo/login", json={"user_id": "alice"}).status_code == 404
    assert HTTP.get(f"{server.url}/").status_code == 404
