"""Each option changes exactly what its column of Table E.1-1 says, compared with the Basic Profile."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset

from medfabric.imaging.deid import BASIC, Option, load_table, verify_path

from .conftest import Deidentify
from .planted import STUDY_DATE, PlantedFile

_MARKS = {0x00120063, 0x00120064, 0x00280303}
Leaves = dict[tuple[int, ...], object]


def _leaves(ds: Dataset, prefix: tuple[int, ...] = ()) -> Leaves:
    """Every element by its tag path (items of a sequence share their sequence's path)."""
    out: Leaves = {}
    for elem in ds:
        path = (*prefix, int(elem.tag))
        if elem.VR == "SQ":
            out[path] = len(elem.value)
            for item in elem.value:
                for key, value in _leaves(item, path).items():
                    out[key] = (out.get(key, ()), value) if key in out else value
        else:
            out[path] = elem.value
    return out


def _changed_paths(basic: Dataset, other: Dataset) -> set[tuple[int, ...]]:
    a, b = _leaves(basic), _leaves(other)
    return {path for path in a.keys() | b.keys() if a.get(path) != b.get(path) and path[0] not in _MARKS}


def _column(option: Option) -> set[int]:
    return {tag for tag, row in load_table().rows.items() if row.option_action(option) is not None}


def _explained(path: tuple[int, ...], option: Option) -> bool:
    column = _column(option)
    if option is Option.RETAIN_SAFE_PRIVATE:
        return any((tag >> 16) & 1 for tag in path)
    return any(tag in column for tag in path)


def _check(ds: Dataset) -> None:
    assert ds.PatientIdentityRemoved == "YES"


CASES: list[tuple[Option, Callable[[Dataset, PlantedFile], None]]] = [
    (
        Option.RETAIN_UIDS,
        lambda ds, item: _eq(
            (ds.SOPInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID),
            (item.sop_uid, item.series_uid, item.frame_uid),
        ),
    ),
    (
        Option.RETAIN_DEVICE_IDENTITY,
        lambda ds, item: _eq(
            (ds.DeviceSerialNumber, ds.StationName), (item.patient.serial, item.patient.station)
        ),
    ),
    (
        Option.RETAIN_INSTITUTION_IDENTITY,
        lambda ds, item: _eq(
            (ds.InstitutionName, ds.InstitutionAddress), (item.patient.institution, item.patient.address)
        ),
    ),
    (
        Option.RETAIN_PATIENT_CHARACTERISTICS,
        lambda ds, item: _eq((ds.PatientSex, ds.PatientAge, str(ds.PatientWeight)), ("M", "054Y", "81")),
    ),
    (
        Option.RETAIN_LONGITUDINAL_FULL_DATES,
        lambda ds, item: _eq(
            (ds.StudyDate, ds.SeriesDate, ds.LongitudinalTemporalInformationModified),
            (STUDY_DATE, STUDY_DATE, "UNMODIFIED"),
        ),
    ),
    (
        Option.RETAIN_LONGITUDINAL_MODIFIED_DATES,
        lambda ds, item: _eq((ds.StudyDate < STUDY_DATE, ds.StudyDate == ds.SeriesDate), (True, True)),
    ),
    (
        Option.RETAIN_SAFE_PRIVATE,
        lambda ds, item: _eq(
            (
                "GEMS_ACQU_01" in [str(e.value) for e in ds if e.tag.is_private_creator],
                (0x0033, 0x1001) in ds,
            ),
            (ds.Modality == "CT", False),
        ),
    ),
    (
        Option.CLEAN_DESCRIPTORS,
        lambda ds, item: _eq((ds.StudyDescription, ds.SeriesDescription), ("CT chest", "AXIAL 5mm for")),
    ),
]


def _eq(actual: tuple[object, ...], expected: tuple[object, ...]) -> None:
    assert actual == expected


@pytest.mark.parametrize(("option", "expectation"), CASES, ids=[option.value for option, _ in CASES])
def test_each_option_changes_exactly_its_column(
    option: Option,
    expectation: Callable[[Dataset, PlantedFile], None],
    planted: list[PlantedFile],
    deidentify_planted: Deidentify,
) -> None:
    profile = BASIC.extend(f"basic+{option.value}", options=[option])
    basic_outputs, option_outputs = deidentify_planted(BASIC), deidentify_planted(profile)
    retained = {
        Option.RETAIN_DEVICE_IDENTITY: lambda item: {item.patient.serial, item.patient.station},
        Option.RETAIN_INSTITUTION_IDENTITY: lambda item: {item.patient.institution, item.patient.address},
        Option.RETAIN_LONGITUDINAL_FULL_DATES: lambda item: {STUDY_DATE},
        Option.RETAIN_UIDS: lambda item: {item.sop_uid, item.series_uid, item.study_uid, item.frame_uid},
    }.get(option, lambda item: set())
    changed_somewhere = False
    for item in planted:
        basic = dcmread(basic_outputs[item.path][1])
        other = dcmread(option_outputs[item.path][1])
        changed = _changed_paths(basic, other)
        unexplained = {path for path in changed if not _explained(path, option)}
        assert unexplained == set(), [tuple(f"{t:08X}" for t in p) for p in unexplained]
        changed_somewhere |= bool(changed)
        expectation(other, item)
        source = [value for value in item.source_phi if value not in retained(item)]
        assert verify_path(option_outputs[item.path][1], profile, source) == []
        codes = [c.CodeValue for c in other.DeidentificationMethodCodeSequence]
        assert len(codes) == 2 and codes[0] == "113100"
    assert changed_somewhere
