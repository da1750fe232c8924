"""Schedule rules: parsing MapR's JSON form and the seed's shorthand, and when each rule is due.

Pure values and arithmetic on UTC milliseconds: nothing here reads a clock or the catalog, so a
rule's due instants can be tested for any date. A rule is due at discrete instants; ``last_due``
is the latest one not after a given time, which is what makes catch-up after downtime run once.
"""

from __future__ import annotations

import calendar
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from medfabric.errors import InvalidInput
from medfabric.units import parse_duration_ms

FREQUENCIES = (
    "once",
    "yearly",
    "monthly",
    "weekly",
    "daily",
    "hourly",
    "semihourly",
    "quarterhourly",
    "fiveminutes",
    "minute",
)
_PERIOD_MINUTES = {"minute": 1, "fiveminutes": 5, "quarterhourly": 15, "semihourly": 30, "hourly": 60}
_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAY_MS = 86_400_000
_RULE_KEYS = {"frequency", "retain", "time", "minute", "day", "date", "month", "at", "every"}


@dataclass(frozen=True)
class Rule:
    """One rule of a schedule: when it fires and how long what it made is kept."""

    frequency: str
    every: int = 1  # fire every Nth period (the seed's -daily 2 = every other day)
    time: int = 0  # hour of day, UTC (daily and longer)
    minute: int = 0  # minute of the hour (hourly and longer)
    day: int = 0  # weekday for weekly rules, 0 = Sunday
    date: int = 1  # day of the month for monthly and yearly rules (clamped to the month's end)
    month: int = 1  # month for yearly rules
    at: int | None = None  # once: the instant, ms since the epoch
    retain: str | None = None  # "7" keeps 7 of this rule's snapshots; "7d" keeps each 7 days

    @property
    def retain_count(self) -> int | None:
        return int(self.retain) if self.retain is not None and self.retain.isdigit() else None

    @property
    def retain_ms(self) -> int | None:
        if self.retain is None or self.retain.isdigit():
            return None
        return parse_duration_ms(self.retain, what="retention")

    def last_due(self, now_ms: int) -> int | None:
        """The latest instant at or before ``now_ms`` at which the rule fires (None: not yet)."""
        if self.frequency == "once":
            return self.at if self.at is not None and self.at <= now_ms else None
        if self.frequency in _PERIOD_MINUTES:
            offset = self.minute * 60_000 if self.frequency == "hourly" else 0
            return _floor(now_ms, _PERIOD_MINUTES[self.frequency] * 60_000 * self.every, offset)
        clock = (self.time * 60 + self.minute) * 60_000
        if self.frequency == "daily":
            return _floor(now_ms, _DAY_MS * self.every, clock)
        if self.frequency == "weekly":
            # 1970-01-01 was a Thursday (weekday 4 counting from Sunday).
            offset = ((self.day - 4) % 7) * _DAY_MS + clock
            return _floor(now_ms, 7 * _DAY_MS * self.every, offset)
        now = datetime.fromtimestamp(now_ms / 1000, UTC)
        if self.frequency == "monthly":
            index = now.year * 12 + now.month - 1
            for back in range(12 * self.every + 2):
                year, month0 = divmod(index - back, 12)
                if (year * 12 + month0 - 1970 * 12) % self.every == 0:
                    candidate = self._instant(year, month0 + 1)
                    if candidate <= now_ms:
                        return candidate
            return None
        for year in range(now.year, now.year - self.every - 2, -1):  # yearly
            if (year - 1970) % self.every == 0:
                candidate = self._instant(year, self.month)
                if candidate <= now_ms:
                    return candidate
        return None

    def _instant(self, year: int, month: int) -> int:
        day = min(self.date, calendar.monthrange(year, month)[1])
        moment = datetime(year, month, day, self.time, self.minute, tzinfo=UTC)
        return int(moment.timestamp() * 1000)

    def as_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {"frequency": self.frequency}
        if self.every != 1:
            document["every"] = self.every
        if self.frequency in ("daily", "weekly", "monthly", "yearly"):
            document["time"] = self.time
        if self.frequency not in ("once", "minute", "fiveminutes", "quarterhourly", "semihourly"):
            document["minute"] = self.minute
        if self.frequency == "weekly":
            document["day"] = _WEEKDAYS[self.day]
        if self.frequency in ("monthly", "yearly"):
            document["date"] = self.date
        if self.frequency == "yearly":
            document["month"] = _MONTHS[self.month - 1]
        if self.at is not None:
            moment = datetime.fromtimestamp(self.at / 1000, UTC)
            document["at"] = moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        if self.retain is not None:
            document["retain"] = self.retain
        return document


def _floor(now_ms: int, period_ms: int, offset_ms: int) -> int:
    return (now_ms - offset_ms) // period_ms * period_ms + offset_ms


def format_timestamp(ms: int) -> str:
    """A sortable UTC timestamp, as scheduled snapshots carry in their names."""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_timestamp(text: str, *, what: str) -> int:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as error:
        raise InvalidInput(f"{what}: {text!r} is not an ISO 8601 time (e.g. 2025-03-01T02:00Z)") from error
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def parse_retain(value: object, *, what: str) -> str | None:
    """``7`` (a count of snapshots) or a duration such as ``7d``, ``12h``, ``1y``."""
    if value is None or value == "":
        return None
    text = str(value).strip()
    if text.isdigit():
        if int(text) < 1:
            raise InvalidInput(f"{what}: retain must keep at least 1 snapshot")
        return str(int(text))
    parse_duration_ms(text, what=f"{what}: retention")
    return text


def _int_in(value: object, low: int, high: int, *, what: str) -> int:
    try:
        number = int(str(value))
    except ValueError as error:
        raise InvalidInput(f"{what} must be a number from {low} to {high}, not {value!r}") from error
    if not low <= number <= high:
        raise InvalidInput(f"{what} must be from {low} to {high}, not {number}")
    return number


def _named(value: object, names: tuple[str, ...], low: int, *, what: str) -> int:
    text = str(value).strip().lower()
    if text[:3] in names and not text.isdigit():
        return names.index(text[:3]) + low
    return _int_in(text, low, low + len(names) - 1, what=what)


def parse_rule(document: object, number: int, *, now_ms: int) -> Rule:
    """One rule of MapR's JSON form, e.g. ``{"frequency": "daily", "retain": "7d", "time": 2}``."""
    what = f"rule {number}"
    if not isinstance(document, dict):
        raise InvalidInput(f"{what} must be a JSON object")
    unknown = sorted(set(document) - _RULE_KEYS)
    if unknown:
        raise InvalidInput(f"{what}: unknown field(s) {', '.join(unknown)}")
    frequency = str(document.get("frequency", "")).strip().lower()
    if frequency not in FREQUENCIES:
        raise InvalidInput(f"{what}: frequency must be one of {', '.join(FREQUENCIES)}, not {frequency!r}")
    time, minute = 0, 0
    raw_time = document.get("time", 0)
    if isinstance(raw_time, str) and ":" in raw_time:
        hours, _, minutes = raw_time.partition(":")
        time = _int_in(hours, 0, 23, what=f"{what}: time")
        minute = _int_in(minutes, 0, 59, what=f"{what}: time's minutes")
    else:
        time = _int_in(raw_time, 0, 23, what=f"{what}: time (hour of day, UTC)")
    if "minute" in document:
        minute = _int_in(document["minute"], 0, 59, what=f"{what}: minute")
    at = None
    if frequency == "once":
        at = parse_timestamp(str(document["at"]), what=f"{what}: at") if "at" in document else now_ms
    return Rule(
        frequency=frequency,
        every=_int_in(document.get("every", 1), 1, 1000, what=f"{what}: every"),
        time=time,
        minute=minute,
        day=_named(document.get("day", "sun"), _WEEKDAYS, 0, what=f"{what}: day"),
        date=_int_in(document.get("date", 1), 1, 31, what=f"{what}: date"),
        month=_named(document.get("month", 1), _MONTHS, 1, what=f"{what}: month"),
        at=at,
        retain=parse_retain(document.get("retain"), what=what),
    )


def parse_schedule_json(text: str, *, now_ms: int) -> tuple[str | None, list[Rule]]:
    """MapR's form: ``{"name": …, "rules": [{…}, …]}`` (or just the list of rules)."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise InvalidInput(f"-schedule is not valid JSON: {error.msg} at position {error.pos}") from error
    name = None
    if isinstance(document, dict):
        name = document.get("name")
        document = document.get("rules")
    if not isinstance(document, list) or not document:
        raise InvalidInput('-schedule needs a non-empty "rules" list, e.g. {"rules":[{"frequency":"daily"}]}')
    return (str(name) if name is not None else None), [
        parse_rule(rule, number, now_ms=now_ms) for number, rule in enumerate(document)
    ]


def shorthand_rules(
    *,
    hourly: int = 0,
    daily: int = 0,
    weekly: int = 0,
    monthly: int = 0,
    retain: str | None = None,
    time: int = 0,
) -> list[Rule]:
    """The seed's form: ``-hourly 0 -daily 1 -retain 7`` (N = every Nth period, 0 = no rule)."""
    keep = parse_retain(retain, what="-retain")
    rules = [
        Rule(frequency, every=every, time=time if frequency != "hourly" else 0, retain=keep)
        for frequency, every in (
            ("hourly", hourly),
            ("daily", daily),
            ("weekly", weekly),
            ("monthly", monthly),
        )
        if every
    ]
    for every in (hourly, daily, weekly, monthly):
        if every < 0:
            raise InvalidInput("-hourly, -daily, -weekly and -monthly take 0 (off) or a positive number")
    if not rules:
        raise InvalidInput(
            "a schedule needs at least one rule: give -hourly/-daily/-weekly/-monthly or -schedule"
        )
    return rules


def rules_to_json(rules: list[Rule]) -> str:
    return json.dumps([rule.as_json() for rule in rules], separators=(",", ":"))


def rules_from_json(text: str) -> list[Rule]:
    """Rules as stored in the catalog (always complete, so parsing needs no clock)."""
    return [parse_rule(rule, number, now_ms=0) for number, rule in enumerate(json.loads(text))]
