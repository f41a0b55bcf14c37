"""Every model, imported so Alembic autogenerate sees all tables."""

from fieldstation.models.accounts import ApiKey, KeyKind, User
from fieldstation.models.base import Base
from fieldstation.models.channels import Channel, Device, Field
from fieldstation.models.meta import ChannelMeta
from fieldstation.models.readings import Entry, Reading
from fieldstation.models.rollups import ReadingBlock, RollupDay, RollupDirty, RollupHour, RollupMinute
from fieldstation.models.throttle import SignInFailures

__all__ = [
    "ApiKey",
    "Base",
    "Channel",
    "ChannelMeta",
    "Device",
    "Entry",
    "Field",
    "KeyKind",
    "Reading",
    "ReadingBlock",
    "RollupDay",
    "RollupDirty",
    "RollupHour",
    "RollupMinute",
    "SignInFailures",
    "User",
]
