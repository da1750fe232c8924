"""Replacement values: date shifts, scrubbing of free text, keyed pseudonyms."""

from __future__ import annotations

import pytest

from medfabric.errors import InvalidInput
from medfabric.imaging.deid.pseudonyms import Pseudonymizer
from medfabric.imaging.deid.values import identifying_terms, scrub_text, shift_dates


@pytest.mark.parametrize(
    ("value", "vr", "expected"),
    [
        ("20240315", "DA", "20240305"),
        ("20240301\\20240302", "DA", "20240220\\20240221"),
        ("20240101-20240110", "DA", "20231222-20231231"),
        ("20240315101500.000+0100", "DT", "20240305101500.000+0100"),
        ("2024", "DT", "2024"),
        ("101500", "TM", "101500"),
        ("not a date", "DA", ""),  # what cannot be shifted is emptied, never kept
        ("", "DA", ""),
    ],
)
def test_shift_dates(value: str, vr: str, expected: str) -> None:
    assert shift_dates(value, vr, -10) == expected


def test_scrub_removes_names_ids_and_ideographic_forms_but_not_parts_of_words() -> None:
    terms = identifying_terms(("MRN-00042", "19700101"), ("Johnson^Mary", "Yamada^Yuki=山田^由紀"))
    assert scrub_text("Pt MARY JOHNSON, mrn-00042, DOB 19700101", terms) == "Pt , , DOB"
    assert scrub_text("SUMMARY of 山田由紀", terms) == "SUMMARY of"
    assert scrub_text("CT chest", terms) == "CT chest"
    assert scrub_text("İstanbul Mary", terms) == "İstanbul"  # case folding that changes lengths


def test_pseudonyms_are_keyed_stable_and_valid() -> None:
    one, same, other = Pseudonymizer(b"k" * 16), Pseudonymizer(b"k" * 16), Pseudonymizer(b"x" * 16)
    uid = one.uid("1.2.3.4")
    assert uid == same.uid("1.2.3.4 ") != other.uid("1.2.3.4")
    assert uid.startswith("2.25.") and len(uid) <= 64 and "." not in uid[5:]
    assert (int(uid[5:]) >> 76) & 0xF == 8  # a UUIDv8 read as an integer
    assert one.patient_name("doe^john^^") == one.patient_name("DOE^JOHN")
    assert one.patient_id("A1") != one.patient_id("A2") and len(one.patient_id("A1")) <= 64
    assert len(one.ae_title("STATION1")) == 16
    shift = one.date_shift_days("A1")
    assert shift == same.date_shift_days("A1") and -3650 <= shift <= -1
    with pytest.raises(InvalidInput):
        Pseudonymizer(b"")
