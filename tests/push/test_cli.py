"""`tidings vapid-keys`, and how `tidings serve` refuses a Web Push setup that cannot work."""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from tests.push.helpers import PUSH_ENV
from tests.support import HTTP, Server, free_port, make_token, run_cli, tidings_env
from tidings.settings import ConfigError, Settings


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return tidings_env(f"sqlite:///{tmp_path / 'tidings.db'}")


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def test_vapid_keys_prints_a_pair_the_server_serves(env: dict[str, str], tmp_path: Path) -> None:
    result = run_cli(env, "vapid-keys")
    assert result.returncode == 0, result.stderr
    comment, line = result.stdout.strip().splitlines()
    public = comment.rpartition(" ")[2]
    assert comment.startswith("# ")
    name, _, private = line.partition("=")
    assert name == "TIDINGS_VAPID_PRIVATE_KEY"
    # The pair belongs together: the public key is the private one's point.
    key = ec.derive_private_key(int.from_bytes(unb64url(private), "big"), ec.SECP256R1())
    assert (
        key.public_key().public_numbers()
        == (
            ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64url(public))
        ).public_numbers()
    )
    # Pasted into the environment, it is what the server hands to browsers.
    server = Server(
        env={**env, **PUSH_ENV, "TIDINGS_VAPID_PRIVATE_KEY": private},
        log_path=tmp_path / "server.log",
    )
    server.start()
    try:
        answer = HTTP.get(
            f"{server.url}/notifications/push/key",
            headers={"authorization": f"Bearer {make_token('u')}"},
        )
        assert answer.json() == {"public_key": public}
    finally:
        server.close()
    # A new pair each time.
    assert run_cli(env, "vapid-keys").stdout != result.stdout


def _serve(env: dict[str, str], *, hide: str | None = None) -> subprocess.CompletedProcess[str]:
    # The push extra "not installed": its module set to None, which the import system treats
    # as absent (find_spec returns None, import raises).
    code = "import sys\n"
    if hide is not None:
        code += f"sys.modules[{hide!r}] = None\n"
    code += "from tidings.cli import main\nraise SystemExit(main())\n"
    return subprocess.run(
        [sys.executable, "-c", code, "serve", "--port", str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_serve_with_a_key_and_without_the_extra_says_so_in_one_line(env: dict[str, str]) -> None:
    result = _serve({**env, **PUSH_ENV}, hide="pywebpush")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line == (
        "tidings: TIDINGS_VAPID_PRIVATE_KEY is set but Web Push needs the push extra "
        "(pywebpush is not installed): pip install 'tidings[push]'"
    )


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        ("TIDINGS_VAPID_SUBJECT", "ops@example.com", "TIDINGS_VAPID_SUBJECT"),
        ("TIDINGS_VAPID_SUBJECT", "", "TIDINGS_VAPID_SUBJECT"),
        ("TIDINGS_VAPID_PRIVATE_KEY", "not-a-key", "TIDINGS_VAPID_PRIVATE_KEY"),
        ("TIDINGS_PUSH_GRACE", "0", "TIDINGS_PUSH_GRACE"),
        ("TIDINGS_PUSH_PRESENCE_INTERVAL", "5", "TIDINGS_PUSH_PRESENCE_INTERVAL"),
        ("TIDINGS_PUSH_LEASE", "2", "TIDINGS_PUSH_LEASE"),
    ],
)
def test_a_push_setting_that_cannot_work_is_one_line(
    env: dict[str, str], variable: str, value: str, named: str
) -> None:
    result = _serve({**env, **PUSH_ENV, variable: value})
    assert result.returncode == 2, result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("tidings: "), line
    assert named in line, line


def test_push_is_off_without_a_key_and_the_grace_takes_fractions() -> None:
    base = {"TIDINGS_SECRET": "s" * 32}
    assert not Settings.from_env(base).push_enabled
    on = Settings.from_env({**base, **PUSH_ENV, "TIDINGS_PUSH_GRACE": "0.25"})
    assert on.push_enabled
    assert on.push_grace == 0.25
    assert Settings.from_env({**base, **PUSH_ENV, "TIDINGS_VAPID_SUBJECT": "https://a.example"})
    with pytest.raises(ConfigError, match="TIDINGS_PUSH_GRACE"):
        Settings.from_env({**base, **PUSH_ENV, "TIDINGS_PUSH_GRACE": "abc"})


def test_send_with_a_key_set_needs_no_push_extra(env: dict[str, str], tmp_path: Path) -> None:
    # One .env for every command: `tidings send` pushes nothing itself, the servers do.
    server = Server(env={**env, **PUSH_ENV}, log_path=tmp_path / "server.log")
    server.start()
    try:
        code = (
            "import sys\nsys.modules['pywebpush'] = None\n"
            "from tidings.cli import main\nraise SystemExit(main())\n"
        )
        result = subprocess.run(
            [sys.executable, "-c", code, "send", "someone", "hello"],
            env={**env, **PUSH_ENV},
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert [n["message"] for n in server.listed("someone")] == ["hello"]
    finally:
        server.close()
