"""The pure stages of ingest: parse and validate, placement, routing rules, the metadata document."""

from __future__ import annotations

import io
import json
import random
import re
import struct
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydicom import dcmread, dcmwrite
from pydicom._dicom_dict import DicomDictionary
from pydicom.datadict import keyword_for_tag
from pydicom.uid import ExplicitVRBigEndian

from medfabric.docdb.documents import encode
from medfabric.errors import InvalidInput
from medfabric.fs.paths import check_name, split_path
from medfabric.imaging.ingest.attributes import _decode_raw, dataset_json
from medfabric.imaging.ingest.header import Truncated, read_header
from medfabric.imaging.ingest.metadata import (
    Placement,
    metadata_document,
    metadata_encoded,
    with_attributes_text,
)
from medfabric.imaging.ingest.model import ParsedInstance, Rejection
from medfabric.imaging.ingest.parse import parse_instance, parse_prefix, with_digest
from medfabric.imaging.ingest.placement import instance_path, safe_component
from medfabric.imaging.ingest.routing import choose_volume, parse_routes
from medfabric.imaging.synth import generate_corpus, write_bad_files
from tests.imaging.test_ingest_helpers import ROUTES, make_instance


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("corpus")
    generate_corpus(root, patients=2, seed=3, size="small")
    return sorted(root.rglob("*.dcm"))


def parsed(data: bytes) -> ParsedInstance:
    result = parse_instance(data)
    assert isinstance(result, ParsedInstance), result
    return result


# -- parse and validate --


def test_the_synthetic_bad_files_are_rejected_each_with_its_reason(tmp_path: Path) -> None:
    expected = write_bad_files(tmp_path)
    for name, reason in expected.items():
        result = parse_instance((tmp_path / name).read_bytes())
        assert isinstance(result, Rejection), name
        assert result.reason == reason, (name, result)
        assert result.message


@pytest.mark.parametrize(
    ("keyword", "reason"),
    [
        ("SOPInstanceUID", "missing_sop_instance_uid"),
        ("SeriesInstanceUID", "missing_series_instance_uid"),
        ("StudyInstanceUID", "missing_study_instance_uid"),
        ("SOPClassUID", "missing_sop_class_uid"),
    ],
)
def test_each_identifying_uid_is_required(keyword: str, reason: str) -> None:
    result = parse_instance(make_instance(drop=(keyword,)))
    assert isinstance(result, Rejection) and result.reason == reason


def test_every_cut_of_a_file_is_rejected(corpus: list[Path]) -> None:
    syntaxes = set()
    for path in corpus[::3]:
        data = path.read_bytes()
        syntaxes.add(parsed(data).transfer_syntax_uid)
        for cut in range(1, len(data), max(1, len(data) // 60)):
            result = parse_instance(data[:cut])
            assert isinstance(result, Rejection), (path, cut)
    assert len(syntaxes) >= 3  # explicit, implicit and encapsulated syntaxes were all cut


def test_the_direct_reader_agrees_with_pydicom_on_every_transfer_syntax(corpus: list[Path]) -> None:
    syntaxes = set()
    for path in corpus:
        data = path.read_bytes()
        header = read_header(data)
        assert header is not None, path
        syntaxes.add(header.transfer_syntax)
        assert header.attributes == dataset_json(dcmread(io.BytesIO(data), stop_before_pixels=True)), path
    assert len(syntaxes) == 5


def _part10(elements: list[tuple[int, str, bytes]]) -> bytes:
    """A minimal explicit VR little endian Part 10 file holding ``elements`` (tag, VR, value)."""

    def element(tag: int, vr: str, value: bytes) -> bytes:
        head = struct.pack("<HH2s", tag >> 16, tag & 0xFFFF, vr.encode())
        if vr in ("OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"):
            return head + struct.pack("<HI", 0, len(value)) + value
        return head + struct.pack("<H", len(value)) + value

    syntax = b"1.2.840.10008.1.2.1\x00"
    meta = element(0x00020010, "UI", syntax)
    return b"\x00" * 128 + b"DICM" + meta + b"".join(element(*item) for item in sorted(elements))


def test_the_direct_reader_decodes_every_text_and_number_as_the_general_decoder_does() -> None:
    """The reader decodes common values inline (one part, no list); on random values of every VR it
    must give what the general decoder (``_decode_raw``, checked against pydicom elsewhere) gives."""
    tags: dict[str, int] = {}
    for tag, (vr, vm, _name, retired, keyword) in sorted(DicomDictionary.items()):
        if vr in tags or retired or not keyword or vm != "1" or not 0x0008 <= tag >> 16 < 0x7FE0:
            continue
        if tag & 0xFFFF == 0 or tag == 0x00080005:  # group lengths; the character set changes decoding
            continue
        tags[vr] = tag
    wanted = ["AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UI"]
    wanted += ["UR", "UT", "US", "UL", "FD"]
    assert set(wanted) <= set(tags)
    rng = random.Random(7)
    alphabet = [" ", "\\", "\x00", "A", "z", "0", "7", ".", "-", "+", "e", "^", "=", "\u00e9"]
    for _ in range(300):
        elements: list[tuple[int, str, bytes]] = []
        for vr in wanted:
            if vr in ("US", "UL", "FD"):
                raw = rng.randbytes(rng.choice([0, 2, 4, 8, 16]))
            else:
                text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 12)))
                raw = text.encode("latin_1")
            raw += b" " * (len(raw) % 2)
            elements.append((tags[vr], vr, raw))
        header = read_header(_part10(elements))
        assert header is not None
        for tag, vr, raw in elements:
            expected = _decode_raw(vr, raw, True, "latin_1")
            assert header.attributes.get(keyword_for_tag(tag)) == expected, (vr, raw)


def test_a_prefix_parses_like_the_whole_file(corpus: list[Path]) -> None:
    used = 0
    for path in corpus:
        data = path.read_bytes()
        whole = parsed(data)
        result = parse_prefix(data[:4096], len(data))
        if result is None:  # encapsulated Pixel Data or a longer header: the worker reads it all
            continue
        used += 1
        assert result == replace(whole, digest=b"") and result.attributes == whole.attributes
        assert with_digest(result, data).digest == whole.digest
        cut = parse_prefix(data[:4096], len(data) - 1)
        assert isinstance(cut, Rejection) and cut.reason == "truncated"
    assert used >= 5


def test_unusual_files_fall_back_to_pydicom() -> None:
    japanese = make_instance(
        patient_name="Yamada^Tarou=山田^太郎=やまだ^たろう", SpecificCharacterSet=["", "ISO 2022 IR 87"]
    )
    assert read_header(japanese) is None
    assert parsed(japanese).patient_name == "Yamada^Tarou=山田^太郎=やまだ^たろう"
    ds = dcmread(io.BytesIO(make_instance()))
    ds.file_meta.TransferSyntaxUID = ExplicitVRBigEndian
    buffer = io.BytesIO()
    ds.preamble = b"\0" * 128
    dcmwrite(buffer, ds, implicit_vr=False, little_endian=False, force_encoding=True)
    assert read_header(buffer.getvalue()) is None
    assert parsed(buffer.getvalue()).modality == "MR"


def test_a_dicomdir_is_not_an_instance() -> None:
    data = make_instance()
    ds = dcmread(io.BytesIO(data))
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.1.3.10"
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=False)
    result = parse_instance(buffer.getvalue())
    assert isinstance(result, Rejection) and result.reason == "dicomdir"


def test_the_hot_attributes_are_read() -> None:
    result = parsed(
        make_instance(patient_id="MRN7  ", study_date="20240301", issuer="HOSP", instance_number=7)
    )
    assert (result.patient_id, result.issuer_of_patient_id, result.study_date) == ("MRN7", "HOSP", "20240301")
    assert (result.modality, result.series_number, result.instance_number) == ("MR", 1, 7)
    assert result.transfer_syntax_uid == "1.2.840.10008.1.2.1"
    assert len(result.digest) == 32 and result.size > 0 and result.header_length > 0


# -- placement --

HOSTILE = [
    "../../etc/passwd",
    "..",
    ".",
    "/",
    "a/b",
    ".hidden",
    "A B\\C",
    "%41",
    "Müller",
    "x" * 300,
    "ü" * 64,
    "\x00",
    "\u202eevil",
]


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_values_become_one_safe_component(value: str) -> None:
    component = safe_component(value, "UNKNOWN")
    assert check_name(component) == component
    assert not component.startswith(".") and "/" not in component
    assert len(component.encode()) <= 128
    assert component == safe_component(value, "UNKNOWN")  # deterministic


def test_safe_components_do_not_collide_and_keep_ordinary_ids() -> None:
    short = [value for value in HOSTILE if len(value) < 40]
    assert len({safe_component(value, "UNKNOWN") for value in short}) == len(short)
    assert safe_component("MRN-0001_a.b", "UNKNOWN") == "MRN-0001_a.b"
    assert safe_component("../../etc/passwd", "UNKNOWN") == "%2E.%2F..%2Fetc%2Fpasswd"
    assert safe_component("%41", "UNKNOWN") == "%2541"  # '%' itself is escaped: decoding is unambiguous


def test_the_fast_path_for_plain_values_agrees_with_the_rule() -> None:
    """Values of only kept characters skip the escaping loop: the result must be what the rule gives."""
    rng = random.Random(5)
    alphabet = "ABCXYZabcxyz0189-_." + "/% \u00fc\x00"
    for _ in range(3000):
        value = "".join(rng.choice(alphabet) for _ in range(rng.choice([1, 2, 5, 30, 127, 128, 129, 200])))
        expected = (
            "".join(
                character
                if character in "ABCXYZabcxyz0189-_." and not (character == "." and position == 0)
                else "".join(f"%{byte:02X}" for byte in character.encode())
                for position, character in enumerate(value.strip(" \x00"))
            )
            or "UNKNOWN"
        )
        if len(expected) <= 128:
            assert safe_component(value, "UNKNOWN") == expected, value
        else:
            assert len(safe_component(value, "UNKNOWN").encode()) <= 128


def test_a_hostile_patient_id_stays_inside_the_volume() -> None:
    path = instance_path("/medical_images", parsed(make_instance(patient_id="../../etc/passwd")))
    components = split_path(path)
    assert components[0] == "medical_images" and len(components) == 6
    assert components[1] == "%2E.%2F..%2Fetc%2Fpasswd"


@pytest.mark.filterwarnings("ignore:Invalid value for VR DA")
@pytest.mark.parametrize(
    ("attributes", "expected"),
    [
        ({"patient_id": None, "study_date": None, "modality": None}, ("UNKNOWN", "00000000", "OT")),
        ({"patient_id": "", "study_date": "", "modality": ""}, ("UNKNOWN", "00000000", "OT")),
        ({"study_date": "2024.03.01"}, ("P001", "20240301", "MR")),
        ({"study_date": "garbage"}, ("P001", "00000000", "MR")),
    ],
)
def test_missing_values_get_the_documented_placeholders(
    attributes: dict[str, Any], expected: tuple[str, ...]
) -> None:
    instance = parsed(make_instance(**attributes))
    components = split_path(instance_path("/v", instance))
    assert components[1:4] == expected
    assert components[5] == f"{instance.sop_instance_uid}.dcm"
    assert split_path(instance_path("/v", instance, 3))[5] == f"{instance.sop_instance_uid}.v3.dcm"


# -- routing rules --


def route(rules: Any, default: str | None = "medical_images", **fields: Any) -> str | None:
    return choose_volume(parse_routes(rules), fields, default)


def test_the_first_matching_rule_chooses_the_volume() -> None:
    assert route(ROUTES, modality="MR", study_date="20240615") == "mri_2024"
    assert route(ROUTES, modality="CT", study_date="20241231") == "ct_2024"
    assert route(ROUTES, modality="MR", study_date="20250101") == "mri_studies"
    assert route(ROUTES, modality="US", study_date="20240615") == "medical_images"
    assert route(ROUTES, None, modality="US") is None
    assert route(ROUTES, modality="MR", study_date=None) == "mri_studies"  # a missing date is no 2024 date


def test_routing_conditions_follow_mongodb_semantics() -> None:
    rules = [
        {"volume": "a", "modality": {"$in": ["CR", "DX"]}},
        {
            "volume": "b",
            "condition": {"$or": [{"body_part_examined": {"$exists": True}}, {"source": {"$like": "ct%"}}]},
        },
        {"volume": "c", "patient_id": {"$ne": "X"}},
    ]
    assert route(rules, modality="DX") == "a"
    assert route(rules, modality="MR", body_part_examined="HEAD") == "b"
    assert route(rules, modality="MR", source="ct01") == "b"
    assert route(rules, modality="MR") == "c"  # $ne matches a missing field
    assert route(rules, modality="MR", patient_id="X") == "medical_images"
    assert (
        route([{"volume": "n", "series_number": {"$gt": "3"}}], series_number=5) == "medical_images"
    )  # no type mixing


@pytest.mark.parametrize(
    "rules",
    [
        "not json",
        '{"volume": "a"}',
        [{"modality": "MR"}],
        [{"volume": "a", "Modality": "MR"}],
        [{"volume": "a", "modality": {"$bogus": 1}}],
        [{"volume": "a", "condition": {"modality": "MR"}, "study_date": "x"}],
    ],
)
def test_malformed_routing_rules_are_refused(rules: Any) -> None:
    with pytest.raises(InvalidInput):
        parse_routes(rules)


# -- the metadata document --


def test_the_metadata_document_has_the_hot_fields_then_every_attribute(corpus: list[Path]) -> None:
    data = next(
        d for d in (p.read_bytes() for p in corpus) if parsed(d).transfer_syntax_uid == "1.2.840.10008.1.2.1"
    )
    ds = dcmread(io.BytesIO(data), stop_before_pixels=True)
    placement = Placement("mri_2024", "/medical_images/mri/2024/x.dcm", 1, 1700000000000)
    from_dataset = metadata_document(ds, placement)
    instance = parsed(data)
    from_parse = metadata_document(instance, placement)
    for key in ("size", "sop_uid"):
        from_dataset.pop(key), from_parse.pop(key)
    assert from_dataset == from_parse
    document = metadata_document(instance, placement)
    assert document["_id"] == instance.sop_instance_uid == document["sop_uid"] == document["SOPInstanceUID"]
    assert list(document)[:15] == [
        "_id",
        "patient_id",
        "patient_name",
        "study_uid",
        "study_date",
        "modality",
        "series_uid",
        "sop_uid",
        "sop_class_uid",
        "path",
        "volume",
        "size",
        "transfer_syntax",
        "version",
        "ingested_at",
    ]
    assert (document["volume"], document["path"], document["ingested_at"]) == (
        "mri_2024",
        "/medical_images/mri/2024/x.dcm",
        1700000000000,
    )
    assert "PixelData" not in document
    assert isinstance(document["PatientName"], str)
    assert isinstance(document["ImageType"], list)
    assert all(isinstance(item, dict) for item in document["ReferencedPatientSequence"])
    assert isinstance(document["Rows"], int) and isinstance(document["SliceThickness"], float)
    assert any(re.fullmatch("[0-9A-F]{8}", key) for key in document)  # a private attribute: its tag as key
    assert (
        metadata_document(instance, Placement("v", "/v/x.v2.dcm", 2))["_id"]
        == f"{instance.sop_instance_uid};v2"
    )


def test_the_encoded_metadata_document_is_the_document_encoded(corpus: list[Path]) -> None:
    """What a parsing worker prepares (the attributes as JSON text) and the ingest path splices
    stores exactly what encoding the whole document would."""
    for number, path in enumerate(corpus[:6]):
        instance = parsed(path.read_bytes())
        placement = Placement("ct", f"/ct/{number}.dcm", 1 + number % 2, 1700000000000 + number)
        expected = encode(metadata_document(instance, placement), generate_id=False)
        shipped = with_attributes_text(instance)
        assert shipped.attributes == {} and shipped.attributes_text
        assert shipped == instance  # the same parse, lighter to send between processes
        for form in (instance, shipped):
            encoded = metadata_encoded(form, placement)
            assert (encoded.doc_id, encoded.body) == expected
        assert metadata_document(shipped, placement) == metadata_document(instance, placement)


def test_an_attribute_named_like_a_document_field_does_not_shadow_it() -> None:
    instance = replace(
        parsed(make_instance()), attributes={"path": "forged", "Modality": "MR", "modality": "XX"}
    )
    placement = Placement("v", "/v/x.dcm")
    document = json.loads(metadata_encoded(with_attributes_text(instance), placement).body)
    assert (document["path"], document["modality"], document["Modality"]) == ("/v/x.dcm", "MR", "MR")
    assert document == {k: v for k, v in metadata_document(instance, placement).items() if k != "_id"}


# -- real files from other tools: pydicom's own test files (installed with it, no network) --

PYDICOM_FILES = sorted(
    path
    for path in (Path(pydicom.__file__).parent / "data" / "test_files").rglob("*")
    if path.is_file() and path.read_bytes()[128:132] == b"DICM"
)


def test_the_direct_reader_agrees_with_pydicom_on_files_from_other_tools() -> None:
    """GDCM, DCMTK and vendor files (UN for known attributes, odd padding, big endian, JPEG, RLE…):
    where the direct reader reads a header at all, it reads what pydicom reads."""
    assert len(PYDICOM_FILES) > 100
    agreed = 0
    for path in PYDICOM_FILES:
        data = path.read_bytes()
        try:
            header = read_header(data)
        except Truncated:
            continue  # a cut file: rejected, tested elsewhere
        if header is None:
            continue  # left to pydicom
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                ds = dcmread(io.BytesIO(data), stop_before_pixels=True)
            except Exception:  # noqa: BLE001 - a file pydicom itself cannot read: nothing to compare
                continue
        assert header.attributes == dataset_json(ds), path.name
        agreed += 1
    assert agreed > 100


def test_a_known_attribute_written_as_un_is_read_as_its_dictionary_vr() -> None:
    data = (Path(pydicom.__file__).parent / "data" / "test_files" / "rtdose_rle.dcm").read_bytes()
    assert b"\x08\x00\x18\x00UN" in data  # SOPInstanceUID written with VR UN by gdcmconv
    instance = parsed(data)
    assert (instance.sop_instance_uid, instance.modality) == (
        "1.9.999.999.99.9.9999.9999.20030818153516",
        "RTDOSE",
    )
