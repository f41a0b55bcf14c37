"""The sign-in throttle's counts of wrong passwords, by user name and by client address."""

from __future__ import annotations

from sqlalchemy import BigInteger, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from fieldstation.models.base import Base


class SignInFailures(Base):
    """Wrong passwords in a row for one subject, and when the last one came (µs).

    ``subject`` is a SHA-256 (hex) of what is counted (a name at an address, or
    an address), so names that do not exist are counted exactly as names that do,
    and the table never holds a guessed password typed into the name box.
    """

    __tablename__ = "sign_in_failures"

    subject: Mapped[str] = mapped_column(String(64), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer)
    last_failure_us: Mapped[int] = mapped_column(BigInteger)
