"""The Table E.1-1 data, option resolution, and profiles (built-in, extended, from TOML)."""

from __future__ import annotations

from pathlib import Path

import pytest

from medfabric.errors import InvalidInput, NotFound
from medfabric.imaging.deid import (
    BASIC,
    RESEARCH,
    Option,
    Profile,
    get_profile,
    load_profile,
    load_table,
    profile_from_spec,
)
from medfabric.imaging.deid.profiles import standard_safe_private
from medfabric.imaging.deid.rules import compile_profile, effective_code


def test_table_is_the_2026c_edition_with_its_rows_masks_and_private_rule() -> None:
    table = load_table()
    assert table.edition == "2026c"
    assert len(table.rows) > 600
    assert any("dicom-anonymizer" in source for source in table.sources)
    assert table.rows[0x00100010].basic == "Z"  # Patient's Name
    assert table.rows[0x00100020].basic == "Z/D"  # Patient ID
    assert table.rows[0x00080018].basic == "U"  # SOP Instance UID
    assert table.rows[0x00081140].basic == "X/Z/U*"  # Referenced Image Sequence
    assert table.rows[0x00080020].option_action("retain_longitudinal_modified_dates") == "C"
    assert table.rows[0x00080080].option_action("retain_institution_identity") == "K"
    assert {(r.tag >> 16, r.any_element) for r in table.masked_rows} == {(0x5000, True), (0x6000, False)}
    assert table.private_row.option_action("retain_safe_private") == "C"
    assert table.by_keyword["StudyDescription"].tag == 0x00081030
    codes = {row.basic for row in table.rows.values()}
    assert codes <= {"D", "Z", "X", "K", "C", "U", "Z/D", "X/Z", "X/D", "X/Z/D", "X/Z/U*"}


def test_options_resolve_per_column_and_dates_follow_only_the_temporal_options() -> None:
    table = load_table()
    study_date = table.rows[0x00080020]
    assert effective_code(study_date, frozenset()) == "Z"
    assert effective_code(study_date, frozenset({Option.RETAIN_LONGITUDINAL_FULL_DATES})) == "K"
    assert effective_code(study_date, frozenset({Option.RETAIN_LONGITUDINAL_MODIFIED_DATES})) == "C"
    calibration = table.rows[0x00181200]  # Date of Last Calibration: device K, dates K/C
    assert effective_code(calibration, frozenset({Option.RETAIN_DEVICE_IDENTITY})) == "X"
    allergies = table.rows[0x00102110]
    assert effective_code(allergies, frozenset({Option.RETAIN_PATIENT_CHARACTERISTICS})) == "C"
    rules = compile_profile(BASIC)
    assert rules.actions[0x00100020] == ("PID", "X")
    assert rules.actions[0x00100010] == ("PNAME", "X")
    assert rules.actions[0x00081140] == ("U", "K")  # references kept, UIDs inside remapped


def test_builtin_profiles_and_unknown_names() -> None:
    assert get_profile("basic") is BASIC
    assert Option.RETAIN_SAFE_PRIVATE in get_profile("research").options
    with pytest.raises(NotFound):
        get_profile("nope")


def test_extend_adds_options_and_overrides_and_keeps_the_base_name() -> None:
    custom = RESEARCH.extend("trial-7", options=["retain_uids"], overrides={"SeriesDescription": "K"})
    assert custom.base == "research"
    assert Option.RETAIN_UIDS in custom.options and Option.CLEAN_DESCRIPTORS in custom.options
    assert compile_profile(custom).codes[0x0008103E] == "K"
    assert hash(custom) == hash(
        RESEARCH.extend("trial-7", options=["retain_uids"], overrides={"SeriesDescription": "K"})
    )


def test_profile_from_toml(tmp_path: Path) -> None:
    path = tmp_path / "trial.toml"
    path.write_text(
        'name = "trial-42"\nbase = "basic"\n'
        'options = ["retain_longitudinal_modified_dates", "retain_patient_characteristics"]\n'
        "max_date_shift_days = 30\nquarantine = false\n"
        '[overrides]\nProtocolName = "K"\n"(0008,1030)" = "X"\n'
        '[[safe_private]]\ncreator = "ACME 1.0"\ngroup = "0019"\nelement = "10"\n',
        "utf-8",
    )
    profile = load_profile(path)
    assert profile.name == "trial-42" and profile.base == "basic"
    assert profile.options == {
        Option.RETAIN_LONGITUDINAL_MODIFIED_DATES,
        Option.RETAIN_PATIENT_CHARACTERISTICS,
    }
    assert profile.max_date_shift_days == 30 and profile.quarantine is False
    assert profile.override_map == {0x00181030: "K", 0x00081030: "X"}
    assert ("ACME 1.0", 0x0019, 0x10) in compile_profile(profile).safe_private


@pytest.mark.parametrize(
    "spec",
    [
        {"name": "x", "options": ["retain_everything"]},
        {"name": "x", "options": ["clean_graphics"]},  # not implemented: refused, not half-honoured
        {"name": "x", "options": ["retain_longitudinal_full_dates", "retain_longitudinal_modified_dates"]},
        {"name": "x", "overrides": {"PatientName": "Q"}},
        {"name": "x", "overrides": {"NoSuchKeyword": "K"}},
        {"name": "x", "base": "missing"},
        {"name": "x", "colour": "blue"},
        {"name": "x", "max_date_shift_days": 0},
        {"options": []},
    ],
)
def test_bad_profile_specs_are_refused(spec: dict[str, object]) -> None:
    with pytest.raises(InvalidInput):
        profile_from_spec(spec)


def test_bad_toml_is_invalid_input(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("name = ", "utf-8")
    with pytest.raises(InvalidInput):
        load_profile(path)


def test_safe_private_list_is_data() -> None:
    safe = {entry.key for entry in standard_safe_private()}
    assert ("GEMS_ACQU_01", 0x0019, 0x23) in safe
    assert ("SIEMENS MR HEADER", 0x0019, 0x0C) in safe


def test_a_secret_must_be_bytes_of_some_length() -> None:
    from medfabric.imaging.deid import Deidentifier

    with pytest.raises(InvalidInput):
        Deidentifier(BASIC, b"short")
    with pytest.raises(InvalidInput):
        Deidentifier(Profile(name="p"), b"a string secret of enough length"[:3])
