"""Who did it: the `actor` string every service takes and every audit row carries."""

from __future__ import annotations

import getpass


def for_api_key(name: str) -> str:
    return f"api_key:{name}"


def for_user(username: str) -> str:
    return f"user:{username}"


def for_cli() -> str:
    try:
        who = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry for the uid (containers)
        who = "unknown"
    return f"cli:{who}"


SYSTEM = "system"
