"""Schedule rules: both input forms, and the instants at which each frequency fires."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from medfabric.errors import InvalidInput
from medfabric.replication.schedule import (
    FREQUENCIES,
    Rule,
    format_timestamp,
    parse_schedule_json,
    rules_from_json,
    rules_to_json,
    shorthand_rules,
)


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


def test_the_seeds_shorthand() -> None:
    rules = shorthand_rules(hourly=0, daily=1, retain="7")
    assert rules == [Rule("daily", every=1, retain="7")]
    assert rules[0].retain_count == 7 and rules[0].retain_ms is None
    both = shorthand_rules(hourly=4, weekly=1, retain="2w")
    assert [(r.frequency, r.every, r.retain_ms) for r in both] == [
        ("hourly", 4, 14 * 86_400_000),
        ("weekly", 1, 14 * 86_400_000),
    ]
    with pytest.raises(InvalidInput, match="at least one rule"):
        shorthand_rules(hourly=0, daily=0)
    with pytest.raises(InvalidInput, match="retention"):
        shorthand_rules(daily=1, retain="7 parsecs")


def test_mapr_json_rules() -> None:
    name, rules = parse_schedule_json(
        '{"name":"nightly","rules":[{"frequency":"daily","retain":"7d","time":2},'
        '{"frequency":"weekly","day":"saturday","time":"03:30","retain":4},'
        '{"frequency":"once","at":"2030-01-01T00:00Z"}]}',
        now_ms=0,
    )
    assert name == "nightly"
    assert rules[0] == Rule("daily", time=2, retain="7d")
    assert (rules[1].day, rules[1].time, rules[1].minute, rules[1].retain_count) == (6, 3, 30, 4)
    assert rules[2].at == ms("2030-01-01T00:00:00")
    assert rules_from_json(rules_to_json(rules)) == rules
    for bad, message in (
        ('{"rules":[{"frequency":"dayly"}]}', "frequency must be one of"),
        ('{"rules":[{"frequency":"daily","time":25}]}', "time"),
        ('{"rules":[{"frequency":"daily","colour":"red"}]}', "unknown field"),
        ('{"rules":[]}', "non-empty"),
        ("{not json", "not valid JSON"),
        ('{"rules":[{"frequency":"daily","retain":0}]}', "at least 1"),
    ):
        with pytest.raises(InvalidInput, match=message):
            parse_schedule_json(bad, now_ms=0)


@pytest.mark.parametrize(
    ("rule", "now", "due"),
    [
        (Rule("minute"), "2025-03-05T10:17:42", "2025-03-05T10:17:00"),
        (Rule("fiveminutes"), "2025-03-05T10:17:42", "2025-03-05T10:15:00"),
        (Rule("quarterhourly"), "2025-03-05T10:17:42", "2025-03-05T10:15:00"),
        (Rule("semihourly"), "2025-03-05T10:17:42", "2025-03-05T10:00:00"),
        (Rule("hourly", minute=20), "2025-03-05T10:17:42", "2025-03-05T09:20:00"),
        (Rule("daily", time=2), "2025-03-05T01:00:00", "2025-03-04T02:00:00"),
        (Rule("daily", time=2), "2025-03-05T02:00:00", "2025-03-05T02:00:00"),
        (Rule("weekly", day=0, time=1), "2025-03-05T10:00:00", "2025-03-02T01:00:00"),  # a Sunday
        (Rule("weekly", day=3, time=1), "2025-03-05T10:00:00", "2025-03-05T01:00:00"),  # a Wednesday
        (Rule("monthly", date=31, time=0), "2025-03-05T10:00:00", "2025-02-28T00:00:00"),  # clamped
        (Rule("monthly", date=1), "2025-03-05T10:00:00", "2025-03-01T00:00:00"),
        (Rule("yearly", month=7, date=4), "2025-03-05T10:00:00", "2024-07-04T00:00:00"),
        (Rule("once", at=ms("2025-03-01T00:00:00")), "2025-03-05T10:00:00", "2025-03-01T00:00:00"),
    ],
)
def test_last_due_instant(rule: Rule, now: str, due: str) -> None:
    assert rule.last_due(ms(now)) == ms(due)


def test_every_nth_period_and_not_yet() -> None:
    every_other_day = Rule("daily", every=2)
    first = every_other_day.last_due(ms("2025-03-05T12:00:00"))
    assert first is not None
    assert every_other_day.last_due(first + 86_400_000) == first
    assert every_other_day.last_due(first + 2 * 86_400_000) == first + 2 * 86_400_000
    assert Rule("once", at=ms("2030-01-01T00:00:00")).last_due(ms("2025-01-01T00:00:00")) is None
    assert len(FREQUENCIES) == 10


def test_timestamps_in_names_sort_as_time_does() -> None:
    earlier, later = format_timestamp(ms("2025-03-05T09:59:59")), format_timestamp(ms("2025-03-05T10:00:00"))
    assert earlier == "2025-03-05T09:59:59Z" and earlier < later
