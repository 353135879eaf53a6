"""Which Contacts and DingTalkBots match a search, as the console's search box does.

Every filter takes a whole or partial value and ignores case; filters given
together must all match. ``--name`` looks at ``metadata.name`` and
``spec.displayName`` of Contacts *and* DingTalkBots (the console lists bots
among its contacts). ``--mobile`` and ``--email`` look at Contacts only, at the
value as written and at the operator's normalised value in
``status.normalized``. Mobile numbers are compared on their digits alone, so
``1380013`` finds ``+86 138 0013 8000`` and ``+8613800138000`` finds
``138-0013-8000`` (through ``status.normalized.mobile``).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any


def digits(text: str) -> str:
    """The decimal digits of ``text``, in ASCII (other scripts' digits, e.g. full-width, too)."""
    return "".join(str(int(ch)) for ch in text if ch.isdecimal())


@dataclass(frozen=True)
class Filters:
    name: str | None = None
    mobile: str | None = None
    email: str | None = None

    def problems(self) -> list[str]:
        """Why these filters cannot be used (empty when they can)."""
        found = []
        for flag, value in (("--name", self.name), ("--mobile", self.mobile),
                            ("--email", self.email)):
            if value is not None and not value.strip():
                found.append(f"{flag} must not be empty")
        if self.mobile is not None and self.mobile.strip() and not digits(self.mobile):
            found.append(f"--mobile {self.mobile!r}: give some digits of the number")
        return found


def _text(mapping: Mapping[str, Any], *path: str) -> str:
    value: Any = mapping
    for key in path:
        value = value.get(key) if isinstance(value, Mapping) else None
    return value if isinstance(value, str) else ""


def _folded(text: str) -> str:
    # As the operator folds emails (NFKC): full-width letters find plain ones, and back.
    return unicodedata.normalize("NFKC", text).casefold()


def _contains_casefold(needle: str, haystack: Iterable[str]) -> bool:
    wanted = _folded(needle.strip())
    return any(wanted in _folded(text) for text in haystack if text)


def _contains_digits(needle: str, haystack: Iterable[str]) -> bool:
    wanted = digits(needle)
    return any(wanted in digits(text) for text in haystack if text)


def matches(obj: Mapping[str, Any], filters: Filters) -> bool:
    """Whether one Contact or DingTalkBot (a raw API object) matches all filters."""
    is_contact = obj.get("kind") == "Contact"
    if filters.name is not None and not _contains_casefold(
        filters.name, (_text(obj, "metadata", "name"), _text(obj, "spec", "displayName"))
    ):
        return False
    if filters.mobile is not None and not (
        is_contact
        and _contains_digits(
            filters.mobile,
            (_text(obj, "spec", "mobile"), _text(obj, "status", "normalized", "mobile")),
        )
    ):
        return False
    return filters.email is None or (
        is_contact
        and _contains_casefold(
            filters.email,
            (_text(obj, "spec", "email"), _text(obj, "status", "normalized", "email")),
        )
    )


def search(objects: Iterable[Mapping[str, Any]], filters: Filters) -> list[Mapping[str, Any]]:
    return [obj for obj in objects if matches(obj, filters)]
