"""nginx in front of the nodes, configured with the very block that docs/deploy.md shows.

The block is taken from the document as it stands; only the node addresses, the listen ports and
the certificate paths are replaced (each replacement must find its text, so the document and the
test cannot drift apart). A self-signed certificate stands in for the real one.
"""

from __future__ import annotations

import re
import shutil
import ssl
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support import free_port

ROOT = Path(__file__).resolve().parents[2]
DEPLOY_DOC = ROOT / "docs" / "deploy.md"
MARKER = "<!-- tested-nginx-config:"
DOC_NODES = ("10.0.0.11:8000", "10.0.0.12:8000", "10.0.0.13:8000")
DOC_CERT = "/etc/letsencrypt/live/notify.example.com/fullchain.pem"
DOC_KEY = "/etc/letsencrypt/live/notify.example.com/privkey.pem"


def find_nginx() -> str | None:
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if Path(p).exists()), None
    )


def documented_config() -> str:
    text = DEPLOY_DOC.read_text()
    start = text.index(MARKER)
    match = re.compile(r"```nginx\n(.*?)```", re.DOTALL).search(text, start)
    assert match is not None, "docs/deploy.md: no nginx block after the marker"
    return match.group(1)


def _replace(text: str, old: str, new: str) -> str:
    assert old in text, f"docs/deploy.md's nginx block no longer contains {old!r}"
    return text.replace(old, new)


def make_certificate(folder: Path) -> tuple[Path, Path]:
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost",
            "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


@dataclass
class Nginx:
    folder: Path
    node_ports: list[int]
    binary: str
    https_port: int = 0
    http_port: int = 0
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.https_port}"

    @property
    def cert(self) -> Path:
        return self.folder / "cert.pem"

    def ssl_context(self) -> ssl.SSLContext:
        """Trusts the test certificate only: clients verify TLS as a browser would."""
        return ssl.create_default_context(cafile=str(self.cert))

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.folder.chmod(0o755)
        make_certificate(self.folder)
        # free_port() only asks the kernel for a port that is free now: two calls can return the
        # same one, and another test can take it before nginx binds. Either failure names the
        # port in nginx's own words, so each attempt picks fresh ports and the last words are
        # what a failure reports.
        words = ""
        for _ in range(5):
            self.https_port, self.http_port = self._two_free_ports()
            conf = self._write_config()
            test = subprocess.run(
                [self.binary, "-t", "-q", "-p", str(self.folder), "-c", str(conf)],
                capture_output=True,
                text=True,
            )
            if test.returncode != 0:
                words = test.stderr
                if "Address already in use" in words or "bind()" in words:
                    continue
                raise RuntimeError(f"nginx -t refused the documented config:\n{words}")
            if self._run(conf):
                return
            words = self.error_log()
            if "Address already in use" not in words and "bind()" not in words:
                break
        raise RuntimeError(f"nginx did not start:\n{words}")

    def _two_free_ports(self) -> tuple[int, int]:
        taken = set(self.node_ports)
        ports: list[int] = []
        while len(ports) < 2:
            port = free_port()
            if port not in taken:
                taken.add(port)
                ports.append(port)
        return ports[0], ports[1]

    def _write_config(self) -> Path:
        site = documented_config()
        assert len(self.node_ports) == len(DOC_NODES)
        for doc_node, port in zip(DOC_NODES, self.node_ports, strict=True):
            site = _replace(site, doc_node, f"127.0.0.1:{port}")
        site = _replace(site, "listen 80;", f"listen 127.0.0.1:{self.http_port};")
        site = _replace(
            site, "listen 443 ssl http2;", f"listen 127.0.0.1:{self.https_port} ssl http2;"
        )
        site = _replace(site, DOC_CERT, str(self.folder / "cert.pem"))
        site = _replace(site, DOC_KEY, str(self.folder / "key.pem"))
        temp = self.folder / "temp"
        temp.mkdir(exist_ok=True)
        temp.chmod(0o777)
        # What Debian's /etc/nginx/nginx.conf provides around conf.d/*.conf, pointed at tmp.
        main = f"""
daemon off;
worker_processes 1;
pid {self.folder}/nginx.pid;
error_log {self.folder}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {temp}/body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
{site}
}}
"""
        conf = self.folder / "nginx.conf"
        conf.write_text(main)
        return conf

    def _run(self, conf: Path) -> bool:
        """Starts nginx and waits for it to answer; False when it exited instead."""
        (self.folder / "error.log").unlink(missing_ok=True)
        self.proc = subprocess.Popen(
            [self.binary, "-p", str(self.folder), "-c", str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                httpx.get(f"{self.url}/healthz", verify=self.ssl_context(), timeout=2)
                return True
            except httpx.TransportError:
                time.sleep(0.1)
        raise RuntimeError(f"nginx did not answer within 15 s:\n{self.error_log()}")

    def error_log(self) -> str:
        path = self.folder / "error.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
