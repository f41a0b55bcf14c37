"""Every model, imported so Alembic autogenerate sees all tables."""

from fieldstation.models.accounts import ApiKey, KeyKind, User
from fieldstation.models.alerts import AlertDelivery, AlertRule, AlertTransition, WorkerJob
from fieldstation.models.base import Base
from fieldstation.models.channels import Channel, Device, Field
from fieldstation.models.meta import ChannelMeta
from fieldstation.models.monitoring import DeviceActivity, DeviceExpectation
from fieldstation.models.readings import EntryRecord, ReadingRecord
from fieldstation.models.rollups import ReadingBlock, RollupDay, RollupDirty, RollupHour, RollupMinute
from fieldstation.models.throttle import SignInFailures

__all__ = [
    "AlertDelivery",
    "AlertRule",
    "AlertTransition",
    "ApiKey",
    "Base",
    "Channel",
    "ChannelMeta",
    "Device",
    "DeviceActivity",
    "DeviceExpectation",
    "EntryRecord",
    "Field",
    "KeyKind",
    "ReadingRecord",
    "ReadingBlock",
    "RollupDay",
    "RollupDirty",
    "RollupHour",
    "RollupMinute",
    "SignInFailures",
    "User",
    "WorkerJob",
]
