"""The bench's closed choices: what `--generator` and `--via` select, and which tool generated a load.

Only enums here, so the CLI's option declarations can name them at start-up without importing the
load generators (httpx) or the Docker SDK.
"""

from enum import StrEnum


class Generator(StrEnum):
    """`--generator`: wrk and h2load when installed (auto) or required (wrk), or the built-in httpx one."""

    auto = "auto"
    wrk = "wrk"
    httpx = "httpx"


class Via(StrEnum):
    """`--via`: where the load is sent."""

    # The container's own address, as a load balancer's would be.
    bridge = "bridge"
    # Its 127.0.0.1 port, i.e. Docker's userland proxy, which costs the fastest server about a quarter
    # of its throughput on a 2-core machine (measured).
    published = "published"


class Tool(StrEnum):
    """The program that generated a load (the report names it: the built-in one's figures are a floor)."""

    WRK = "wrk"  # HTTP/1.1
    H2LOAD = "h2load"  # h2c
    HTTPX = "httpx"  # built in: asyncio + httpx, either protocol
