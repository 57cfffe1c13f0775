"""Errors raised when data breaks a contract. Each names the type and the field."""

from __future__ import annotations


class ContractError(ValueError):
    """A record or wire document breaks its contract: `type_name.field: message`."""

    def __init__(self, type_name: str, field: str, message: str) -> None:
        self.type_name = type_name
        self.field = field
        self.message = message
        location = ".".join(part for part in (type_name, field) if part) or "<value>"
        super().__init__(f"{location}: {message}")


class WireError(ContractError):
    """JSON crossing a process or file boundary does not match its schema."""
