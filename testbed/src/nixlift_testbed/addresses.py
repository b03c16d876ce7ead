"""Names and addresses of sandbox hosts: hN on 127.77.B.N, 250 hosts per /24 block (pure)."""

from __future__ import annotations

from collections.abc import Sequence

#: the loopback range of all sandbox hosts; one /24 block per (part of a) sandbox
NETWORK = "127.77.0.0/16"
NETWORK_PREFIX = "127.77"
HOSTS_PER_BLOCK = 250
FIRST_BLOCK = 1
LAST_BLOCK = 250
MAX_HOSTS = HOSTS_PER_BLOCK * (LAST_BLOCK - FIRST_BLOCK + 1)


def host_name(index: int) -> str:
    return f"h{index}"


def host_index(name: str) -> int | None:
    if name.startswith("h") and name[1:].isdigit() and not name[1:].startswith("0"):
        return int(name[1:])
    return None


def blocks_needed(count: int) -> int:
    return -(-count // HOSTS_PER_BLOCK)


def host_address(blocks: Sequence[int], index: int) -> str:
    """Address of host number `index` (1-based): block `(index-1)//250`, host `(index-1)%250+1`."""
    block = blocks[(index - 1) // HOSTS_PER_BLOCK]
    return f"{NETWORK_PREFIX}.{block}.{(index - 1) % HOSTS_PER_BLOCK + 1}"


def address_block(address: str) -> int | None:
    parts = address.split(".")
    if len(parts) == 4 and ".".join(parts[:2]) == NETWORK_PREFIX and parts[2].isdigit():
        return int(parts[2])
    return None
