"""A binary cache between the deployer and a fleet (`--cache`): each system is pushed there once,
signed, and every host fetches it from there (a substituter it is told to trust for this one
realisation) instead of receiving a copy of its own from the deployer, whose uplink then carries
one copy instead of one per host. A host that cannot use the cache gets the usual copy.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit

from nixlift import proc
from nixlift.errors import CommandError, CopyError, UsageError
from nixlift.events import Emit
from nixlift.model import Stage
from nixlift.nix import argv as nix_argv
from nixlift.nix.logparse import run_logged

#: stores that are binary caches: nix signs what it uploads there itself (`secret-key=`)
_BINARY_CACHES = ("file", "http", "https", "s3")


@dataclass(frozen=True)
class CacheConfig:
    """What the user said: where to push, the signing key, where hosts fetch from."""

    store: str
    key_file: Path | None = None
    url: str | None = None


@dataclass(frozen=True)
class Cache:
    """A deploy's binary cache, ready: where pushes go, the signing key, where hosts fetch."""

    store: str
    key_file: Path
    #: what the hosts fetch from
    url: str
    public_key: str

    @property
    def push_url(self) -> str:
        """The store URL nix pushes to, signing on upload where the store is a binary cache."""
        if urlsplit(self.store).scheme not in _BINARY_CACHES:
            return self.store
        params = [f"secret-key={quote(str(self.key_file), safe='/')}"]
        if "compression=" not in self.store:
            params.append("compression=zstd")  # xz, nix's default, is slow to pack
        return self.store + ("&" if "?" in self.store else "?") + "&".join(params)


async def prepare(config: CacheConfig) -> Cache:
    """Check the configuration and read the key's public half (one nix call); before any host
    is touched."""
    scheme = urlsplit(config.store).scheme
    if not scheme:
        raise UsageError(
            f"--cache {config.store!r} is not a store URL",
            hint="e.g. file:///srv/cache, s3://bucket, ssh-ng://cache-host",
        )
    if config.key_file is None:
        raise UsageError(
            "--cache needs a key to sign the systems with (hosts trust only signed paths)",
            hint="make one: nix key generate-secret --key-name NAME > cache.key; then give "
            "--cache-key cache.key",
        )
    url = config.url
    if url is None:
        if scheme == "file":
            raise UsageError(
                f"the hosts cannot read {config.store} on this machine",
                hint="serve it (nixlift cache serve DIR) and give --cache-url http://ADDRESS:PORT",
            )
        url = config.store
    try:
        secret = config.key_file.read_bytes()
    except OSError as e:
        raise UsageError(f"cannot read the cache key {config.key_file}: {e.strerror}") from None
    try:
        done = await proc.run(
            nix_argv.public_key(),
            stdin=secret,
            what="reading the cache key",
            hint="it must be a key made by `nix key generate-secret`",
        )
    except CommandError as e:
        raise UsageError(
            f"{config.key_file} is not a nix signing key ({e.stderr_tail.strip()})",
            hint="make one with: nix key generate-secret --key-name NAME",
        ) from None
    return Cache(config.store, config.key_file, url, done.stdout.strip())


class Pusher:
    """Pushes systems to the cache, each once, one upload at a time."""

    def __init__(self, cache: Cache, emit: Emit) -> None:
        self.cache = cache
        self.emit = emit
        self._pushed: dict[str, asyncio.Future[None]] = {}
        self._one_at_a_time = asyncio.Lock()

    async def push(self, host: str, path: str) -> None:
        pushed = self._pushed.get(path)
        if pushed is None:
            pushed = self._pushed[path] = asyncio.ensure_future(self._upload(host, path))
        await asyncio.shield(pushed)

    async def _upload(self, host: str, path: str) -> None:
        async with self._one_at_a_time:
            if urlsplit(self.cache.store).scheme not in _BINARY_CACHES:
                await proc.run(
                    nix_argv.sign(self.cache.key_file, [path]),
                    what="signing the system for the cache",
                    error=CopyError,
                )
            await run_logged(
                nix_argv.copy_to(self.cache.push_url, [path], use_substitutes=False),
                host=host,
                phase=Stage.COPY,
                emit=self.emit,
                error=CopyError,
                what=f"pushing {host}'s system to the cache {self.cache.store}",
                hint="check the cache's store URL and that this machine may write there",
            )

    def forget(self) -> None:
        """Failures no host waited for (a stopped rollout) are not errors of their own."""
        for future in self._pushed.values():
            if future.done() and not future.cancelled():
                future.exception()
