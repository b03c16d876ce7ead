"""Names and addresses of sandbox hosts: hN on 127.77.B.N, 250 hosts per /24 block (pure).

Hosts behind a shaped link (`nixlift_testbed.link`) are on 10.177.B.N instead, in a network
namespace of their own, the same block B claimed for them; the deployer's side of that link
is 10.178.B.1, and 10.177.B.251 is free for a service next to the hosts (a binary cache)."""

from __future__ import annotations

from collections.abc import Sequence

#: the loopback range of all sandbox hosts; one /24 block per (part of a) sandbox
NETWORK = "127.77.0.0/16"
NETWORK_PREFIX = "127.77"
HOSTS_PER_BLOCK = 250
FIRST_BLOCK = 1
LAST_BLOCK = 250
MAX_HOSTS = HOSTS_PER_BLOCK * (LAST_BLOCK - FIRST_BLOCK + 1)
#: hosts behind a shaped link: 10.177.B.N (not loopback, so that they can be routed to)
SHAPED_PREFIX = "10.177"
#: the deployer's address on a shaped link: 10.178.B.1
LINK_PREFIX = "10.178"
#: 10.177.B.SERVICE_HOST: beside shaped hosts (.1 to .250), for a service of theirs
SERVICE_HOST = 251


def host_name(index: int) -> str:
    return f"h{index}"


def host_index(name: str) -> int | None:
    if name.startswith("h") and name[1:].isdigit() and not name[1:].startswith("0"):
        return int(name[1:])
    return None


def blocks_needed(count: int) -> int:
    return -(-count // HOSTS_PER_BLOCK)


def host_address(blocks: Sequence[int], index: int, *, shaped: bool = False) -> str:
    """Address of host number `index` (1-based): block `(index-1)//250`, host `(index-1)%250+1`
    (127.77.B.N, or 10.177.B.N behind a shaped link)."""
    block = blocks[(index - 1) // HOSTS_PER_BLOCK]
    prefix = SHAPED_PREFIX if shaped else NETWORK_PREFIX
    return f"{prefix}.{block}.{(index - 1) % HOSTS_PER_BLOCK + 1}"


def address_block(address: str) -> int | None:
    parts = address.split(".")
    prefix = ".".join(parts[:2])
    if len(parts) == 4 and prefix in (NETWORK_PREFIX, SHAPED_PREFIX) and parts[2].isdigit():
        return int(parts[2])
    return None
