"""An MQTT broker's address, from the URL an operator writes: the ingest worker's and alerts' alike. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from fieldstation.errors import BadRequest


@dataclass(frozen=True, slots=True)
class Broker:
    """Where and how to connect, from ``mqtt://user:pass@host:1883`` or ``mqtts://…``."""

    host: str
    port: int
    tls: bool
    username: str | None = None
    password: str | None = None

    @classmethod
    def from_url(cls, url: str) -> Broker:
        """Parse a broker URL; user and password may be percent-encoded.

        :raise BadRequest: not an ``mqtt://`` or ``mqtts://`` URL with a host.
        """
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise BadRequest("the broker URL must look like mqtt://[user:pass@]host[:port]")
        tls = parts.scheme == "mqtts"
        try:
            port = parts.port or (8883 if tls else 1883)
        except ValueError:
            raise BadRequest("the broker URL has a bad port") from None
        user = unquote(parts.username) if parts.username else None
        password = unquote(parts.password) if parts.password else None
        return cls(parts.hostname, port, tls, user, password)
