"""Closed choices that CLI options name at start-up: enums only, so `imgtool --help` loads no Docker SDK or YAML.

(The bench's own choices are in toolkit.bench.choices, for the same reason.)
"""

from enum import StrEnum


class EndpointMode(StrEnum):
    """How a service's name resolves on the stack's network."""

    # One virtual IP through IPVS (Swarm's default).
    vip = "vip"
    # The name resolves to every task: for hosts without IPVS (the routing mesh needs it).
    dnsrr = "dnsrr"
