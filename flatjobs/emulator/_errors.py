"""The error the emulator raises for a request the platform would refuse."""

from __future__ import annotations

from typing import Any

__all__ = ["EmulatorError"]


class EmulatorError(Exception):
    """A request the platform would refuse; becomes ``{"errors": [{"key", "message"}]}``."""

    def __init__(self, status: int, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.key = key

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"message": self.message}
        if self.key:
            error["key"] = self.key
        return {"errors": [error]}
