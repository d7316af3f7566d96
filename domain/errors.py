"""Domain errors with stable codes; the API turns them into typed mutation errors."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class FieldError:
    code: str
    message: str
    field: tuple[str, ...] = ()
    index: int | None = None


@dataclass
class DomainError(Exception):
    errors: list[FieldError] = field(default_factory=list)

    @classmethod
    def one(cls, code: str, message: str, *path: str, index: int | None = None) -> DomainError:
        return cls([FieldError(code, message, tuple(path), index)])

    def __str__(self) -> str:
        return "; ".join(e.message for e in self.errors)
