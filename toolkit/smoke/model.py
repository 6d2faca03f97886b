"""Plain data for smoke results."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

# Order matters: it is the table's row order and the order checks run on a container.
CHECKS = ("health", "nonroot", "http1", "h2c", "h2-tls", "ws", "lifespan", "graceful", "readonly")
# `--check`'s choices, from the tuple above.
Check = StrEnum("Check", {name.replace("-", "_"): name for name in CHECKS})


def select_checks(checks: list[str] | None, protocols: list[str] | None) -> set[str]:
    """The checks to run: those named (default all); naming protocols runs those protocol checks only."""
    from toolkit.servers import PROTOCOLS

    selected = set(checks or CHECKS)
    if protocols:
        selected = (selected - set(PROTOCOLS)) | set(protocols)
    return selected


class Status(StrEnum):
    PASS = "pass"
    FAIL = "FAIL"
    # Not claimed by the server and indeed failing: a known limitation, never a pass.
    NA = "n/a"
    # Not claimed by the server, yet it passed: the registry is out of date.
    STALE = "STALE"
    # Not run: not selected, or the image lacks what the check needs.
    SKIP = "skip"


@dataclass
class CheckResult:
    check: str
    status: Status
    detail: str = ""
    seconds: float = 0.0
    # Shown beside the status in the table (failures show their detail instead).
    short: str = ""

    @property
    def failed(self) -> bool:
        return self.status in (Status.FAIL, Status.STALE)


@dataclass
class ServerReport:
    server: str
    image: str
    results: list[CheckResult] = field(default_factory=list)
    seconds: float = 0.0
    logs: str = ""

    @property
    def failed(self) -> bool:
        return any(result.failed for result in self.results)

    def result(self, check: str) -> CheckResult | None:
        return next((result for result in self.results if result.check == check), None)


@dataclass
class Report:
    servers: list[ServerReport] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return any(server.failed for server in self.servers)
