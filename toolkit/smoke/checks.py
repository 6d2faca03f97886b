"""Protocol checks against a running container. Each returns a short detail or raises CheckFailure.

The runner owns container lifetimes; these functions only speak HTTP/1.1, HTTP/2 and
WebSocket to `Target`, an address on 127.0.0.1 published by a container this run started.
"""

from __future__ import annotations

import ssl
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import trustme
from cryptography.hazmat.primitives import serialization
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect as ws_connect

TIMEOUT = httpx.Timeout(5.0)


class CheckFailure(Exception):
    """The check ran and the server did not do what was expected; str() says what happened."""


def health_ok(status: int, configured: bool) -> bool:
    """A configured health route must answer 2xx; without one, any answer below 500 at / is healthy."""
    return 200 <= status < 300 if configured else status < 500


@dataclass
class Target:
    port: int
    # None: the image has no health route configured (GET / must answer below 500).
    health_path: str | None = "/health"
    reference_routes: bool = True
    tls_context: ssl.SSLContext | None = None
    host: str = "127.0.0.1"
    facts: dict = field(default_factory=dict)

    @property
    def scheme(self) -> str:
        return "https" if self.tls_context else "http"

    @property
    def probe_path(self) -> str:
        return self.health_path or "/"

    @property
    def health_rule(self) -> str:
        return "200" if self.health_path else "an answer below 500"

    def url(self, path: str) -> str:
        return f"{self.scheme}://{self.host}:{self.port}{path}"

    def client(self, http1: bool = True, http2: bool = False) -> httpx.Client:
        return httpx.Client(http1=http1, http2=http2, timeout=TIMEOUT, verify=self.tls_context or True)


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise CheckFailure(message)


def _get(client: httpx.Client, target: Target, path: str) -> httpx.Response:
    try:
        response = client.get(target.url(path))
    except httpx.HTTPError as exc:
        raise CheckFailure(f"GET {path}: {type(exc).__name__}: {exc or 'no detail'}") from None
    _expect(response.status_code == 200, f"GET {path} answered {response.status_code}, expected 200")
    return response


def _local_port(response: httpx.Response) -> int | None:
    stream = response.extensions.get("network_stream")
    address = stream.get_extra_info("client_addr") if stream is not None else None
    return address[1] if address else None


def _health(client: httpx.Client, target: Target) -> httpx.Response:
    """GET the health route (or /), held to the health rule: 2xx when configured, else below 500."""
    path = target.probe_path
    try:
        response = client.get(target.url(path))
    except httpx.HTTPError as exc:
        raise CheckFailure(f"GET {path}: {type(exc).__name__}: {exc or 'no detail'}") from None
    ok = health_ok(response.status_code, target.health_path is not None)
    _expect(ok, f"GET {path} answered {response.status_code}, expected {target.health_rule}")
    return response


def probe_health(target: Target) -> bool:
    try:
        with target.client() as client:
            return health_ok(client.get(target.url(target.probe_path)).status_code, target.health_path is not None)
    except httpx.HTTPError:
        return False


def http1(target: Target) -> str:
    """HTTP/1.1: health and index answer, one connection is kept alive, /stream arrives in chunks."""
    with target.client() as client:
        responses = [_health(client, target) for _ in range(3)]
        for response in responses:
            _expect(response.http_version == "HTTP/1.1", f"answered over {response.http_version}, not HTTP/1.1")
        ports = {_local_port(response) for response in responses}
        _expect(len(ports) == 1, f"keep-alive not honoured: {len(ports)} connections for 3 requests")
        if not target.reference_routes:
            return f"GET {target.probe_path} {responses[-1].status_code} over HTTP/1.1, keep-alive reused"
        _get(client, target, "/")
        info = _get(client, target, "/info").json()
        target.facts["info"] = info
        _expect(info.get("http_version") == "1.1", f"app saw http_version {info.get('http_version')!r}")
        arrivals = []
        with client.stream("GET", target.url("/stream")) as response:
            _expect(response.status_code == 200, f"GET /stream answered {response.status_code}")
            body = b""
            for piece in response.iter_raw():
                arrivals.append(time.monotonic())
                body += piece
        _expect(body.count(b"chunk") == 5, f"/stream body incomplete: {body[:80]!r}")
        spread = arrivals[-1] - arrivals[0]
        _expect(len(arrivals) >= 2 and spread >= 0.1, f"/stream arrived in one piece ({len(arrivals)} read(s))")
    return f"/, /info, /health keep-alive; /stream in {len(arrivals)} chunks over {spread:.2f}s"


def _http2(target: Target) -> str:
    with target.client(http1=False, http2=True) as client:
        response = _get(client, target, "/info") if target.reference_routes else _health(client, target)
        _expect(response.http_version == "HTTP/2", f"negotiated {response.http_version}, not HTTP/2")
        if not target.reference_routes:
            return f"GET {target.probe_path} {response.status_code} over HTTP/2"
        info = response.json()
        _expect(info.get("http_version") == "2", f"app saw http_version {info.get('http_version')!r}, not 2")
        _expect(info.get("scheme") == target.scheme, f"app saw scheme {info.get('scheme')!r}")
        return f"/info over HTTP/2, app saw http_version 2, scheme {info['scheme']}"


def h2c(target: Target) -> str:
    """HTTP/2 over cleartext with prior knowledge."""
    _expect(target.tls_context is None, "h2c needs a cleartext target")
    return _http2(target)


def h2_tls(target: Target) -> str:
    """HTTP/2 over TLS, negotiated with ALPN."""
    _expect(target.tls_context is not None, "h2-tls needs a TLS target")
    return _http2(target)


def ws(target: Target, path: str, note: str = "") -> str:
    """A WebSocket handshake at `path` as a browser on the app's own page makes it (its Origin header, a real
    RFC 6455 upgrade, permessage-deflate offered), then a clean close; on the reference app's /ws also an echo
    of a text and a binary frame.

    Any other app's route only has to accept the upgrade and the close: what it says is its own business.
    `note` follows the path in the detail (the path parameters filled in).
    """
    scheme = "wss" if target.tls_context else "ws"
    url = f"{scheme}://{target.host}:{target.port}{path}"
    echo = target.reference_routes and path == "/ws"
    try:
        with ws_connect(url, open_timeout=5, close_timeout=5, ssl=target.tls_context, origin=target.url("")) as socket:
            if echo:
                socket.send("hello imgtool")
                text = socket.recv(timeout=5)
                _expect(text == "hello imgtool", f"text echo came back as {text!r}")
                socket.send(b"\x00\x01binary\xff")
                data = socket.recv(timeout=5)
                _expect(data == b"\x00\x01binary\xff", f"binary echo came back as {data!r}")
            socket.close()
            code = socket.close_code
    except CheckFailure:
        raise
    except InvalidStatus as exc:
        status = exc.response.status_code
        raise CheckFailure(f"WebSocket {path}: the handshake was refused with HTTP {status}") from None
    except Exception as exc:
        raise CheckFailure(f"WebSocket {path}: {type(exc).__name__}: {exc}") from None
    _expect(code == 1000, f"WebSocket {path}: close code {code}, expected 1000")
    return "upgrade, text and binary echo, close 1000" if echo else f"upgrade at {path}{note}, close 1000"


def new_connection_after_signal(target: Target) -> str:
    """After SIGTERM a new request must be refused (or served), never left hanging."""
    try:
        with httpx.Client(timeout=httpx.Timeout(3.0), verify=False) as client:
            response = client.get(target.url(target.probe_path))
    except httpx.TimeoutException:
        raise CheckFailure("a new connection after SIGTERM hung instead of being refused") from None
    except httpx.TransportError:
        return "refused"
    return f"still answered {response.status_code}"


# ---- checks on the container itself ----


def nonroot(container) -> str:
    processes = container.top(ps_args="-o pid,uid,args")
    uid_column = processes["Titles"].index("UID")
    uids = {row[uid_column] for row in processes["Processes"]}
    if not uids or "0" in uids:
        raise CheckFailure(f"processes run as UID {sorted(uids)}: root is among them")
    return f"every process runs as UID {', '.join(sorted(uids))}"


def write_certificate(authority: trustme.CA, directory: Path) -> None:
    """A server certificate for localhost/127.0.0.1, readable by the image's non-root user.

    The key is written as PKCS#8 because granian accepts no other format.
    """
    issued = authority.issue_cert("localhost", "127.0.0.1")
    key = serialization.load_pem_private_key(issued.private_key_pem.bytes(), password=None)
    pkcs8 = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    (directory / "cert.pem").write_bytes(b"".join(blob.bytes() for blob in issued.cert_chain_pems))
    (directory / "key.pem").write_bytes(pkcs8)
    directory.chmod(0o755)
    for path in directory.iterdir():
        path.chmod(0o644)
