"""Stop a server under load and count what happened to every request (test_reliability's measurement).

Bounded load on 127.0.0.1: a few keep-alive clients in threads, for a few seconds, each sending
slow requests so that some are always in flight when the container is told to stop.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

import httpx

from toolkit.smoke.checks import Target


class Outcome(StrEnum):
    """What happened to one request."""

    OK = "ok"  # 200 with the complete expected body
    BAD_STATUS = "bad_status"  # a response, but not 200
    TRUNCATED = "truncated"  # headers arrived, the body did not complete
    NO_RESPONSE = "no_response"  # refused or closed before any response: not served, not corrupted


@dataclass
class DrainResult:
    # Outcomes of requests sent before the stop signal (in flight when it came, or queued) ...
    before: Counter = field(default_factory=Counter)
    # ... and of requests sent after it.
    after: Counter = field(default_factory=Counter)
    exit_code: int | None = None
    stop_seconds: float = 0.0

    @property
    def sent(self) -> int:
        return sum(self.before.values()) + sum(self.after.values())

    @property
    def damaged(self) -> int:
        """Requests that got a response which was not a complete 200."""
        return sum(counts[Outcome.BAD_STATUS] + counts[Outcome.TRUNCATED] for counts in (self.before, self.after))

    @property
    def lost_in_flight(self) -> int:
        """Requests sent before the signal that never got a response: a graceful server loses none."""
        return self.before[Outcome.NO_RESPONSE]

    def summary(self) -> dict:
        return {
            "sent": self.sent,
            "completed": self.before[Outcome.OK] + self.after[Outcome.OK],
            "damaged": self.damaged,
            "lost_in_flight": self.lost_in_flight,
            "refused_after_signal": self.after[Outcome.NO_RESPONSE],
            "exit_code": self.exit_code,
            "stop_seconds": round(self.stop_seconds, 2),
        }


def _one_request(client: httpx.Client, target: Target, milliseconds: int) -> Outcome:
    expected = f"slept {milliseconds} ms"
    try:
        with client.stream("GET", target.url(f"/slow?ms={milliseconds}")) as response:
            try:
                body = response.read().decode(errors="replace")
            except httpx.HTTPError:
                return Outcome.TRUNCATED
            if response.status_code != 200:
                return Outcome.BAD_STATUS
            return Outcome.OK if expected in body else Outcome.TRUNCATED
    except httpx.HTTPError:
        return Outcome.NO_RESPONSE


def drain_under_load(
    target: Target,
    stop: Callable[[], int],
    clients: int = 16,
    duration: float = 5.0,
    stop_after: float = 2.0,
    request_ms: int = 200,
) -> DrainResult:
    """Run `clients` keep-alive loops for `duration` s; call `stop()` (returns the exit code) midway."""
    result = DrainResult()
    lock = threading.Lock()
    deadline = time.monotonic() + duration
    signalled = threading.Event()

    def client_loop() -> None:
        with httpx.Client(timeout=httpx.Timeout(request_ms / 1000 + 10)) as client:
            while time.monotonic() < deadline:
                sent_after_signal = signalled.is_set()
                outcome = _one_request(client, target, request_ms)
                with lock:
                    (result.after if sent_after_signal else result.before)[outcome] += 1
                if outcome == Outcome.NO_RESPONSE:
                    # The server is going away: keep probing, but gently.
                    time.sleep(0.1)

    threads = [threading.Thread(target=client_loop, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    time.sleep(stop_after)
    began = time.monotonic()
    signalled.set()
    result.exit_code = stop()
    result.stop_seconds = time.monotonic() - began
    for thread in threads:
        thread.join(timeout=duration + request_ms / 1000 + 15)
    return result
