"""Traffic across SIGTERM for the graceful check: requests held in the app, and a burst of keep-alive clients.

Any app has a route that answers (its health path, else `/`), none has a slow one. So the check sends two
kinds of traffic to that route while the runner sends SIGTERM:
- **held** requests carry `imgtool-hold-ms`: the probe that wraps the app in the main container
  (imgtool_probe.py) logs their arrival and keeps them in the app for that long before the app answers, so
  they are in flight, for certain, when the signal comes. Each must then be answered whole, with the
  route's own status: a server that drops or resets in-flight requests loses them.
- a **burst**: a few keep-alive clients sending the same request back to back, bounded in count and time.
  It runs for `BURST_BEFORE` seconds at least before the signal. Every response must arrive whole (none cut
  after its headers) and none may hang. After the signal a connection closed before any byte of an answer is
  counted, not failed: the server is closing its keep-alive connections and has answered nothing on them
  (RFC 9112 9.3.1: a client retries those), so the client retries once on a new connection, which the
  server may still accept (it must then answer it whole too) or refuse; a second such close ends the
  client. Before the signal it is a failure. (Through Docker's userland proxy a refused connection looks
  the same: accepted, then closed.)
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx

from toolkit.smoke.checks import Target

HOLD_HEADER = "imgtool-hold-ms"
HOLD_ID_HEADER = "imgtool-hold-id"
HOLD_MS = 2000
BURST_CLIENTS = 8
# Seconds of burst before the signal, at least.
BURST_BEFORE = 0.5
# Bounds of the burst: requests per client, and seconds any client keeps going after the signal.
BURST_MAX_REQUESTS = 3000
BURST_AFTER_SIGNAL = 15.0
REQUEST_TIMEOUT = 5.0


def _problem(exc: httpx.HTTPError) -> str:
    return f"{type(exc).__name__}: {exc or 'no detail'}"


@dataclass
class Held:
    """One request the probe keeps in the app for `milliseconds`, sent on its own connection."""

    target: Target
    path: str
    ident: str
    milliseconds: int = HOLD_MS
    status: int | None = None
    error: str = ""
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        headers = {HOLD_HEADER: str(self.milliseconds), HOLD_ID_HEADER: self.ident}
        timeout = httpx.Timeout(self.milliseconds / 1000 + 10)
        try:
            with (
                httpx.Client(timeout=timeout, verify=False) as client,
                client.stream("GET", self.target.url(self.path), headers=headers) as response,
            ):
                status = response.status_code
                try:
                    response.read()
                except httpx.HTTPError as exc:
                    self.error = f"answered {status}, then the body was cut ({_problem(exc)})"
                    return
                self.status = status
        except httpx.HTTPError as exc:
            self.error = f"lost ({_problem(exc)})"

    def join(self, timeout: float) -> None:
        assert self._thread is not None
        self._thread.join(timeout)

    def verdict(self, expected: int) -> str | None:
        """None when it was answered whole with the route's own status, else what went wrong."""
        if self.error:
            return f"held request {self.ident} {self.error}"
        if self.status is None:
            return f"held request {self.ident} still hanging"
        if self.status != expected:
            return f"held request {self.ident} answered {self.status}, the route answers {expected}"
        return None


@dataclass
class Tally:
    """What the burst saw; `problems` fail the check."""

    whole: int = 0
    # Sent before the signal, answered (whole) after it.
    across: int = 0
    statuses: Counter = field(default_factory=Counter)
    closed_after_signal: int = 0
    problems: list[str] = field(default_factory=list)

    def add(self, other: Tally) -> None:
        self.whole += other.whole
        self.across += other.across
        self.statuses.update(other.statuses)
        self.closed_after_signal += other.closed_after_signal
        self.problems += other.problems


class Burst:
    """`clients` keep-alive loops on one route, from `start()` until the signal has closed them."""

    def __init__(self, target: Target, path: str, clients: int = BURST_CLIENTS):
        self.target = target
        self.path = path
        self.clients = clients
        self.signalled_at: float | None = None
        self.started_at = 0.0
        self._stop = threading.Event()
        self._running = threading.Semaphore(0)
        self._tallies: list[Tally] = []
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._client, daemon=True) for _ in range(clients)]

    def start(self, timeout: float = 10.0) -> bool:
        """Start the clients; True once each has had one whole answer (within `timeout`)."""
        self.started_at = time.monotonic()
        for thread in self._threads:
            thread.start()
        deadline = time.monotonic() + timeout
        return all(self._running.acquire(timeout=max(0.0, deadline - time.monotonic())) for _ in self._threads)

    def signalled(self) -> None:
        """Called just before the signal: after `BURST_BEFORE` s of load (a duration of load, not a readiness wait)."""
        time.sleep(max(0.0, self.started_at + BURST_BEFORE - time.monotonic()))
        self.signalled_at = time.monotonic()

    def wait(self, timeout: float) -> bool:
        """Until every client has stopped by itself (the server closed on it, or a failure); True if they did."""
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return not any(thread.is_alive() for thread in self._threads)

    def finish(self, timeout: float = 10.0) -> Tally:
        """Stop the clients still going (the server has exited) and add up what they saw."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)
        total = Tally()
        with self._lock:
            for tally in self._tallies:
                total.add(tally)
        return total

    def _after_signal(self, moment: float) -> bool:
        return self.signalled_at is not None and moment >= self.signalled_at

    def _client(self) -> None:
        tally = Tally()
        first = True
        unanswered = 0
        try:
            client = httpx.Client(timeout=httpx.Timeout(REQUEST_TIMEOUT), verify=False)
            for _ in range(BURST_MAX_REQUESTS):
                if self._stop.is_set():
                    break
                if self.signalled_at is not None and time.monotonic() - self.signalled_at > BURST_AFTER_SIGNAL:
                    break
                outcome = self._one(client, tally)
                if outcome == "failed":
                    break
                if outcome == "unanswered":
                    unanswered += 1
                    if unanswered == 2:
                        break
                    # Retry on a new connection: the closed one is gone.
                    client.close()
                    client = httpx.Client(timeout=httpx.Timeout(REQUEST_TIMEOUT), verify=False)
                    continue
                unanswered = 0
                if first:
                    first = False
                    self._running.release()
            client.close()
        finally:
            if first:
                self._running.release()
            with self._lock:
                self._tallies.append(tally)

    def _one(self, client: httpx.Client, tally: Tally) -> str:
        """One request: "whole", "unanswered" (closed before any answer, after the signal) or "failed"."""
        sent = time.monotonic()
        status = None
        try:
            with client.stream("GET", self.target.url(self.path)) as response:
                status = response.status_code
                response.read()
        except httpx.TimeoutException as exc:
            tally.problems.append(f"a request hung ({_problem(exc)})")
            return "failed"
        except httpx.HTTPError as exc:
            if status is not None:
                tally.problems.append(f"a response ({status}) was cut mid-body ({_problem(exc)})")
                return "failed"
            if self._after_signal(time.monotonic()):
                tally.closed_after_signal += 1
                return "unanswered"
            tally.problems.append(f"a connection closed without an answer before SIGTERM ({_problem(exc)})")
            return "failed"
        tally.whole += 1
        tally.statuses[status] += 1
        if not self._after_signal(sent) and self._after_signal(time.monotonic()):
            tally.across += 1
        return "whole"
