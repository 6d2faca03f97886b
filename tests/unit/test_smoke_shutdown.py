"""The graceful check's traffic (toolkit/smoke/shutdown.py) against a small HTTP/1.1 server on 127.0.0.1 that
misbehaves on demand: what counts as whole, cut, hung, or closed unanswered before and after the signal. The same
traffic across a real SIGTERM of real servers: tests/integration/test_smoke*.py."""

from __future__ import annotations

import socketserver
import threading

import pytest

from toolkit.smoke import shutdown
from toolkit.smoke.checks import Target


class Handler(socketserver.StreamRequestHandler):
    def handle(self):
        while True:
            request = b""
            while not request.endswith(b"\r\n\r\n"):
                line = self.rfile.readline()
                if not line:
                    return
                request += line
            mode = self.server.mode
            if mode == "close":
                return
            if mode == "hang":
                self.server.release.wait(10)
                return
            if mode == "cut":
                self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b")
                return
            status = b"404 Not Found" if mode == "404" else b"200 OK"
            self.wfile.write(b"HTTP/1.1 " + status + b"\r\nContent-Length: 3\r\n\r\nok\n")


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.mode = "ok"
        self.release = threading.Event()


@pytest.fixture
def server():
    httpd = Server()
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.release.set()
    httpd.shutdown()
    httpd.server_close()


def target(server) -> Target:
    return Target(port=server.server_address[1], health_path=None)


def test_a_server_that_answers_whole_gives_no_problems(server):
    burst = shutdown.Burst(target(server), "/", clients=2)
    assert burst.start()
    burst.signalled()
    tally = burst.finish()
    assert tally.problems == [] and tally.whole > 2 and set(tally.statuses) == {200}


def test_a_response_cut_after_its_headers_fails(server):
    server.mode = "cut"
    burst = shutdown.Burst(target(server), "/", clients=2)
    burst.start()
    tally = burst.finish()
    assert tally.whole == 0
    assert tally.problems and all(problem.startswith("a response (200) was cut mid-body") for problem in tally.problems)


def test_a_connection_closed_unanswered_fails_before_the_signal(server):
    server.mode = "close"
    burst = shutdown.Burst(target(server), "/", clients=1)
    burst.start()
    (problem,) = burst.finish().problems
    assert problem.startswith("a connection closed without an answer before SIGTERM")


def test_after_the_signal_closed_connections_are_counted_and_retried_once(server):
    burst = shutdown.Burst(target(server), "/", clients=2)
    assert burst.start()
    burst.signalled()
    server.mode = "close"
    assert burst.wait(10)
    tally = burst.finish()
    assert tally.problems == []
    # Each client: the keep-alive connection closed, then one new connection closed too, then it stopped.
    assert tally.closed_after_signal == 4


def test_a_request_left_unanswered_is_a_hang(server, monkeypatch):
    monkeypatch.setattr(shutdown, "REQUEST_TIMEOUT", 0.5)
    server.mode = "hang"
    burst = shutdown.Burst(target(server), "/", clients=1)
    burst.start(timeout=5)
    (problem,) = burst.finish().problems
    assert problem.startswith("a request hung")


def test_a_held_request_must_come_back_whole_with_the_routes_own_status(server):
    held = shutdown.Held(target(server), "/", "1", milliseconds=0)
    held.start()
    held.join(10)
    assert held.verdict(200) is None
    assert held.verdict(404) == "held request 1 answered 200, the route answers 404"
    server.mode = "close"
    lost = shutdown.Held(target(server), "/", "2", milliseconds=0)
    lost.start()
    lost.join(10)
    assert lost.verdict(200).startswith("held request 2 lost (RemoteProtocolError")
    server.mode = "cut"
    cut = shutdown.Held(target(server), "/", "3", milliseconds=0)
    cut.start()
    cut.join(10)
    assert cut.verdict(200).startswith("held request 3 answered 200, then the body was cut")
