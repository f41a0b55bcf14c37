"""Small helpers that make users, channels and keys through the same code the app uses."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from fieldstation import manage
from fieldstation.models import Channel, KeyKind, User

PASSWORD = "correct horse battery"


@dataclass
class Account:
    user: User
    key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


@dataclass
class ChannelKeys:
    channel: Channel
    write_key: str
    read_key: str

    @property
    def id(self) -> int:
        return self.channel.id


def make_user(username: str = "alice", *, admin: bool = False) -> Account:
    """A user with a user key."""
    user = manage.create_user(username, PASSWORD, is_admin=admin)
    _, key = manage.create_key(user, KeyKind.USER)
    return Account(user, key)


def make_channel(
    owner: User,
    name: str = "weather",
    fields: Sequence[str] = ("temperature", "humidity"),
    *,
    public: bool = False,
    device: str | None = None,
) -> ChannelKeys:
    """A channel with a write key (optionally bound to ``device``) and a read key."""
    channel = manage.create_channel(owner, name, fields=fields, public=public)
    _, write_key = manage.create_key(owner, KeyKind.WRITE, channel=channel, device=device)
    _, read_key = manage.create_key(owner, KeyKind.READ, channel=channel)
    return ChannelKeys(channel, write_key, read_key)
