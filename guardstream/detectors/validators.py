"""Checksums and structure checks that turn a pattern match into a finding."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

__all__ = ["VALIDATORS", "e164", "ip_address", "luhn", "mod97"]


def _digits(text: str) -> str:
    return "".join(c for c in text if c.isdigit())


def luhn(text: str) -> bool:
    """True when the digits of ``text`` (13 to 19 of them) pass the Luhn checksum."""
    digits = _digits(text)
    if not 13 <= len(digits) <= 19:
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def mod97(text: str) -> bool:
    """True when ``text`` (spaces ignored) is an IBAN passing the ISO 13616 mod-97 check."""
    compact = "".join(text.split()).upper()
    if not 15 <= len(compact) <= 34 or not compact.isalnum() or not compact.isascii():
        return False
    rearranged = compact[4:] + compact[:4]
    number = "".join(str(int(c, 36)) for c in rearranged)
    return int(number) % 97 == 1


def e164(text: str) -> bool:
    """True when ``text`` holds 8 to 15 digits in all (E.164's range for full numbers)."""
    return 8 <= len(_digits(text)) <= 15


def ip_address(text: str) -> bool:
    """True when ``text`` is a valid IPv4 or IPv6 address (an IPv6 zone id is allowed)."""
    try:
        ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return False
    return True


VALIDATORS: dict[str, Callable[[str], bool]] = {
    "luhn": luhn,
    "mod97": mod97,
    "e164": e164,
    "ip": ip_address,
}
