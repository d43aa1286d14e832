"""Checksums and structure checks that turn a pattern match into a finding."""

from __future__ import annotations

import ipaddress
import unicodedata
from collections.abc import Callable

__all__ = ["IBAN_LENGTHS", "VALIDATORS", "e164", "ip_address", "luhn", "mod97"]

# IBAN length per country code, from the SWIFT IBAN registry (the ISO 13616 countries).
IBAN_LENGTHS: dict[str, int] = {
    **dict.fromkeys(["NO"], 15),
    **dict.fromkeys(["BE"], 16),
    **dict.fromkeys(["DK", "FI", "FK", "FO", "GL", "NL", "SD"], 18),
    **dict.fromkeys(["MK", "SI"], 19),
    **dict.fromkeys(["AT", "BA", "EE", "KZ", "LT", "LU", "MN", "XK"], 20),
    **dict.fromkeys(["CH", "HR", "LI", "LV"], 21),
    **dict.fromkeys(["BG", "BH", "CR", "DE", "GB", "GE", "IE", "ME", "RS", "VA"], 22),
    **dict.fromkeys(["AE", "GI", "IL", "IQ", "OM", "SO", "TL"], 23),
    **dict.fromkeys(["AD", "CZ", "ES", "MD", "PK", "RO", "SA", "SE", "SK", "TN", "VG"], 24),
    **dict.fromkeys(["LY", "PT", "ST"], 25),
    **dict.fromkeys(["IS", "TR"], 26),
    **dict.fromkeys(["BI", "DJ", "FR", "GR", "IT", "MC", "MR", "SM"], 27),
    **dict.fromkeys(["AL", "AZ", "BY", "CY", "DO", "GT", "HN", "HU", "LB", "NI", "PL", "SV"], 28),
    **dict.fromkeys(["BR", "EG", "PS", "QA", "UA"], 29),
    **dict.fromkeys(["JO", "KW", "MU", "YE"], 30),
    **dict.fromkeys(["MT", "SC"], 31),
    **dict.fromkeys(["LC"], 32),
    **dict.fromkeys(["RU"], 33),
}


def _digits(text: str) -> str:
    """The decimal digits of ``text`` as ASCII (``٤`` and ``４`` count as ``4``)."""
    return "".join(str(unicodedata.decimal(c)) for c in text if c.isdecimal())


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
    """True when ``text`` (spaces ignored) is an IBAN passing the ISO 13616 mod-97 check.

    A country with a registered IBAN length must have exactly that length; other country
    codes are held to the general 15 to 34 characters.
    """
    compact = "".join(text.split()).upper()
    if not 15 <= len(compact) <= 34 or not compact.isalnum() or not compact.isascii():
        return False
    expected = IBAN_LENGTHS.get(compact[:2])
    if expected is not None and len(compact) != expected:
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
