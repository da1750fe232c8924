"""Sizes and durations as operators write them: ``500G``, ``10T``, ``64K``; ``7d``, ``12h``, ``30m``.

MapR's quota sizes are binary multiples with an optional B (``500G`` = 500 GiB); a bare number
is megabytes, as in maprcli. Parsing never guesses: anything else is an InvalidInput.
"""

from __future__ import annotations

import re

from medfabric.errors import InvalidInput

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGTPE]?)(I?B?)\s*$", re.IGNORECASE)
_SIZE_FACTORS = {
    "": 1 << 20,
    "K": 1 << 10,
    "M": 1 << 20,
    "G": 1 << 30,
    "T": 1 << 40,
    "P": 1 << 50,
    "E": 1 << 60,
}
_DURATION = re.compile(
    r"^\s*(\d+)\s*(s|sec|m|min|h|hr|d|day|days|w|week|weeks|mo|month|months|y|year|years)?\s*$", re.IGNORECASE
)
_DURATION_MS = {
    "s": 1000,
    "sec": 1000,
    "m": 60_000,
    "min": 60_000,
    "h": 3_600_000,
    "hr": 3_600_000,
    "d": 86_400_000,
    "day": 86_400_000,
    "days": 86_400_000,
    "w": 604_800_000,
    "week": 604_800_000,
    "weeks": 604_800_000,
    "mo": 2_592_000_000,
    "month": 2_592_000_000,
    "months": 2_592_000_000,
    "y": 31_536_000_000,
    "year": 31_536_000_000,
    "years": 31_536_000_000,
}


def parse_size(text: str | int, *, what: str = "size") -> int:
    """Bytes from ``500G``/``10T``/``64KB``/``0``; a bare number means MB (MapR's quota unit)."""
    if isinstance(text, int):
        if text < 0:
            raise InvalidInput(f"{what} may not be negative")
        return text
    match = _SIZE.match(text)
    if match is None:
        raise InvalidInput(f"invalid {what} {text!r}: use a number with K, M, G, T or P (e.g. 500G)")
    number, unit, suffix = match.groups()
    if not unit and suffix.upper() == "B":
        return int(float(number))  # "100B": bytes
    return int(float(number) * _SIZE_FACTORS[unit.upper()])


def format_size(size: int) -> str:
    for unit in ("E", "P", "T", "G", "M", "K"):
        factor = _SIZE_FACTORS[unit]
        if size >= factor and size % factor == 0:
            return f"{size // factor}{unit}"
    return f"{size}B" if size else "0"


def human_size(size: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(size) < 1024 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TB"


def parse_duration_ms(text: str, *, what: str = "duration", default_unit: str = "d") -> int:
    match = _DURATION.match(text)
    if match is None:
        raise InvalidInput(f"invalid {what} {text!r}: use a number with s, m, h, d, w, mo or y (e.g. 7d)")
    number, unit = match.groups()
    return int(number) * _DURATION_MS[(unit or default_unit).lower()]
