"""Replacement values: dummies of the right VR, per-patient date shifts, and scrubbing of free text.

Pure functions on values; they never see a dataset, so they cannot leak one into another. A value that
cannot be shifted or parsed becomes empty rather than being kept.
"""

from __future__ import annotations

import datetime as dt
import re
from functools import lru_cache

DUMMY_TEXT = "ANONYMIZED"
DUMMY_NAME = "ANONYMOUS^"
DUMMY_DATE = "19000101"
DUMMY_DATETIME = "19000101000000"
DUMMY_TIME = "000000"

#: The D action's value per VR: valid for the VR, the same for every instance, identifying nothing.
DUMMY_BY_VR: dict[str, object] = {
    "AE": DUMMY_NAME,
    "AS": "000D",
    "CS": DUMMY_TEXT,
    "DA": DUMMY_DATE,
    "DT": DUMMY_DATETIME,
    "TM": DUMMY_TIME,
    "DS": "0",
    "IS": "0",
    "LO": DUMMY_TEXT,
    "LT": DUMMY_TEXT,
    "PN": DUMMY_NAME,
    "SH": DUMMY_TEXT,
    "ST": DUMMY_TEXT,
    "UC": DUMMY_TEXT,
    "UT": DUMMY_TEXT,
    "UR": "",
    "FL": 0.0,
    "FD": 0.0,
    "SL": 0,
    "SS": 0,
    "UL": 0,
    "US": 0,
    "SV": 0,
    "UV": 0,
    "OB": b"",
    "OD": b"",
    "OF": b"",
    "OL": b"",
    "OV": b"",
    "OW": b"",
    "UN": b"",
}
#: Values the D action writes, as the verifier recognises them.
DUMMY_STRINGS = frozenset(v for v in DUMMY_BY_VR.values() if isinstance(v, str) and v)
TEMPORAL_VRS = frozenset({"DA", "DT", "TM"})
TEXT_VRS = frozenset({"LO", "SH", "ST", "LT", "UT", "UC", "PN"})

_MIN_TERM = 3
_SPACES = re.compile(r"[ \t]{2,}")


def _shift_one_date(text: str, days: int) -> str:
    text = text.strip()
    if not text:
        return ""
    if "-" in text:  # a range (query form); shift both ends, keep open ends open
        start, _, end = text.partition("-")
        return f"{_shift_one_date(start, days)}-{_shift_one_date(end, days)}"
    if len(text) != 8 or not text.isdigit():
        return ""
    try:
        shifted = dt.date(int(text[:4]), int(text[4:6]), int(text[6:])) + dt.timedelta(days=days)
    except (ValueError, OverflowError):
        return ""
    return shifted.strftime("%Y%m%d") if shifted.year >= 1 else ""


def _shift_one_datetime(text: str, days: int) -> str:
    text = text.strip()
    if len(text) >= 8 and text[:8].isdigit():
        date = _shift_one_date(text[:8], days)
        return date + text[8:] if date else ""
    if len(text) in (4, 6) and text.isdigit():  # year or year-month precision: shift the middle of it
        middle = text + ("0701" if len(text) == 4 else "15")
        shifted = _shift_one_date(middle, days)
        return shifted[: len(text)]
    return ""


def shift_dates(value: str, vr: str, days: int) -> str:
    """`value` (possibly multi-valued) moved by `days`; TM is unchanged, since shifts are whole days."""
    if vr == "TM" or not value:
        return value
    shift = _shift_one_date if vr == "DA" else _shift_one_datetime
    return "\\".join(shift(part, days) for part in value.split("\\"))


def _long_enough(term: str) -> bool:
    # ideographic names are one or two characters per component; Latin ones shorter than 3 are too common
    return len(term) >= (2 if not term.isascii() else _MIN_TERM)


#: A term to scrub, and whether it only counts as a whole word (name components: "Mary" is no part of
#: "SUMMARY"). Whole values always count, even glued to other text.
Term = tuple[str, bool]
_WORD_BEFORE, _WORD_AFTER = r"(?<![A-Za-z0-9])", r"(?![A-Za-z0-9])"


@lru_cache(maxsize=4096)
def identifying_terms(values: tuple[str, ...], names: tuple[str, ...] = ()) -> tuple[Term, ...]:
    """The strings to scrub from free text, longest first: each value whole, and for person names also
    each component group's components (alone, space-joined, and run together as ideographic names are)."""
    terms: dict[str, bool] = {}

    def add(term: str, whole_word: bool) -> None:
        if _long_enough(term):
            terms[term] = terms.get(term, True) and whole_word

    for value in values:
        for part in value.split("\\"):
            add(part.strip(), False)
    for name in names:
        for value in name.split("\\"):
            for group in value.split("="):
                components = [c.strip() for c in group.split("^") if c.strip()]
                for joined in (" ".join(components), "".join(components), " ".join(components[1::-1])):
                    add(joined, len(components) < 2)
                for component in components:
                    add(component, component.isascii())
    return tuple(sorted(terms.items(), key=lambda t: (-len(t[0]), t[0])))


@lru_cache(maxsize=4096)
def _scrub_pattern(terms: tuple[Term, ...]) -> re.Pattern[str] | None:
    if not terms:
        return None
    parts = [f"{_WORD_BEFORE}{re.escape(t)}{_WORD_AFTER}" if whole else re.escape(t) for t, whole in terms]
    return re.compile("|".join(parts), re.IGNORECASE)


@lru_cache(maxsize=4096)
def terms_in_bytes(terms: tuple[str, ...], codecs: tuple[str, ...]) -> tuple[bytes, ...]:
    """Each term's encodings in `codecs`, lower-cased, to find in undecoded values after bytes.lower().

    Lower-casing the haystack (ASCII only, in C) stands in for a case-insensitive search; non-ASCII
    letters are covered by also encoding each term upper-cased, lower-cased and title-cased. Plain
    substring searches, not one big regex: compiling that per study cost more than all the searching.
    """
    spellings: set[bytes] = set()
    for term in terms:
        for spelling in {term, term.upper(), term.lower(), term.title()}:
            for codec in codecs:
                try:
                    spellings.add(spelling.encode(codec).lower())
                except (UnicodeError, LookupError):
                    continue
    return tuple(sorted(spellings, key=len, reverse=True))


def _is_word_char(text: str, index: int) -> bool:
    return 0 <= index < len(text) and text[index].isascii() and text[index].isalnum()


def scrub_text(text: str, terms: tuple[Term, ...]) -> str:
    """`text` with every identifying term removed (case-insensitive) and whitespace tidied."""
    if not terms or not text:
        return text
    lowered = text.lower()
    if len(lowered) != len(text):  # a letter whose lower case is longer: offsets would not line up
        pattern = _scrub_pattern(terms)
        cleaned = pattern.sub("", text) if pattern is not None else text
    else:
        spans: list[tuple[int, int]] = []
        for term, whole_word in terms:
            needle = term.lower()
            start = lowered.find(needle)
            while start != -1:
                end = start + len(needle)
                if not whole_word or not (_is_word_char(text, start - 1) or _is_word_char(text, end)):
                    spans.append((start, end))
                start = lowered.find(needle, start + 1)
        if not spans:
            return text
        kept, position = [], 0
        for start, end in sorted(spans):
            if start > position:
                kept.append(text[position:start])
            position = max(position, end)
        kept.append(text[position:])
        cleaned = "".join(kept)
    if cleaned == text:
        return text
    return _SPACES.sub(" ", cleaned).strip()
