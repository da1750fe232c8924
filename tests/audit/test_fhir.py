"""FHIR R4 AuditEvent export after IHE BALP: structure, code systems, and a schema check."""

from __future__ import annotations

import importlib.util
import json
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medfabric.audit.chain import AuditRecord, Interface, Outcome
from medfabric.audit.fhir import (
    AUDIT_EVENT_TYPE,
    DCM,
    DICOM_UID,
    ENTITY_TYPE,
    OBJECT_ROLE,
    PARTICIPATION_TYPE,
    RESTFUL_INTERACTION,
    SOURCE_TYPE,
    event_action,
    to_audit_event,
    to_bundle,
)
from medfabric.errors import InvalidInput

FABRIC = "hospital-a"
# FHIR R4 instant (https://hl7.org/fhir/R4/datatypes.html#instant)
INSTANT = re.compile(
    r"([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)-(0[1-9]|1[0-2])-(0[1-9]|[1-2][0-9]|3[0-1])"
    r"T([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?(Z|(\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00))"
)
FHIR_ID = re.compile(r"[A-Za-z0-9\-\.]{1,64}")
AUDIT_EVENT_ELEMENTS = {
    "resourceType", "id", "meta", "implicitRules", "language", "text", "contained", "extension",
    "modifierExtension", "type", "subtype", "action", "period", "recorded", "outcome", "outcomeDesc",
    "purposeOfEvent", "agent", "source", "entity",
}  # fmt: skip
AGENT_ELEMENTS = {"type", "role", "who", "altId", "name", "requestor", "location", "policy", "media"}
AGENT_ELEMENTS |= {"network", "purposeOfUse"}
ENTITY_ELEMENTS = {
    "what",
    "type",
    "role",
    "lifecycle",
    "securityLabel",
    "name",
    "description",
    "query",
    "detail",
}


def record(**changes: Any) -> AuditRecord:
    values: dict[str, Any] = dict(
        seq=42,
        time_us=1_717_171_717_123_456,
        principal="radiologist",
        client_address="10.1.2.3:51234",
        interface=Interface.DICOMWEB,
        operation="read",
        outcome=Outcome.ALLOWED,
        volume="mri_2024",
        path="/medical_images/mri/2024/P1/20240101/MR/1.2.3.4/1.2.3.4.5.dcm",
        file_id="2049.33.131250",
        patient_id="P1",
        study_instance_uid="1.2.3",
        series_instance_uid="1.2.3.4",
        sop_instance_uid="1.2.3.4.5",
        detail=None,
    )
    values.update(changes)
    return AuditRecord(**values)


def check_structure(event: dict[str, Any]) -> None:
    """The R4 AuditEvent's required elements and the code systems BALP expects."""
    json.dumps(event)  # plain JSON types only
    assert event["resourceType"] == "AuditEvent"
    assert set(event) <= AUDIT_EVENT_ELEMENTS
    assert FHIR_ID.fullmatch(event["id"])
    assert {"system", "code"} <= set(event["type"])  # type 1..1 Coding
    assert INSTANT.fullmatch(event["recorded"])  # recorded 1..1 instant
    assert event["action"] in {"C", "R", "U", "D", "E"}
    assert event["outcome"] in {"0", "4", "8", "12"}
    for coding in event.get("subtype", []):
        assert {"system", "code"} <= set(coding)
    agents = event["agent"]  # agent 1..*
    assert agents and all(set(agent) <= AGENT_ELEMENTS for agent in agents)
    assert all(isinstance(agent["requestor"], bool) for agent in agents)  # requestor 1..1
    assert sum(agent["requestor"] for agent in agents) == 1
    for agent in agents:
        assert agent["type"]["coding"][0]["system"] in {DCM, PARTICIPATION_TYPE}
        if "network" in agent:
            assert agent["network"]["type"] in {"1", "2", "3", "4", "5"} and agent["network"]["address"]
    source = event["source"]  # source 1..1 with observer 1..1
    assert source["observer"] and source["type"][0]["system"] == SOURCE_TYPE
    for entity in event.get("entity", []):
        assert set(entity) <= ENTITY_ELEMENTS
        assert entity["type"]["system"] == ENTITY_TYPE and entity["role"]["system"] == OBJECT_ROLE
        for detail in entity.get("detail", []):
            assert set(detail) == {"type", "valueString"}


def entity_with_role(event: dict[str, Any], role: str) -> list[dict[str, Any]]:
    return [e for e in event.get("entity", []) if e["role"]["code"] == role]


def test_dicom_instance_read() -> None:
    event = to_audit_event(record(), fabric=FABRIC)
    check_structure(event)
    assert event["id"] == "42"
    assert event["type"] == {"system": DCM, "code": "110103", "display": "DICOM Instances Accessed"}
    assert event["action"] == "R" and event["outcome"] == "0" and "outcomeDesc" not in event
    assert event["recorded"] == "2024-05-31T16:08:37.123456Z"
    assert {"system": "urn:medfabric:operation", "code": "read"} in event["subtype"]
    assert {"system": "urn:medfabric:interface", "code": "dicomweb"} in event["subtype"]


def test_agents_follow_balp() -> None:
    client, server, user = to_audit_event(record(), fabric=FABRIC)["agent"]
    assert client["type"]["coding"] == [{"system": DCM, "code": "110153", "display": "Source Role ID"}]
    assert client["network"] == {"address": "10.1.2.3", "type": "2"} and client["requestor"] is False
    assert server["type"]["coding"][0]["code"] == "110152" and server["requestor"] is False
    assert server["who"]["identifier"]["value"] == FABRIC
    assert user["type"]["coding"][0] == {
        "system": PARTICIPATION_TYPE,
        "code": "IRCP",
        "display": "information recipient",
    }
    assert user["requestor"] is True and user["who"]["identifier"]["value"] == "radiologist"


@pytest.mark.parametrize(
    ("address", "network"),
    [
        ("10.1.2.3", {"address": "10.1.2.3", "type": "2"}),
        ("10.1.2.3:443", {"address": "10.1.2.3", "type": "2"}),
        ("::1", {"address": "::1", "type": "2"}),
        ("2001:db8::7334", {"address": "2001:db8::7334", "type": "2"}),
        ("[2001:db8::1]:8443", {"address": "2001:db8::1", "type": "2"}),
        ("workstation.example.org", {"address": "workstation.example.org", "type": "1"}),
        ("modality-ct1:104", {"address": "modality-ct1", "type": "1"}),
    ],
)
def test_network_addresses(address: str, network: dict[str, str]) -> None:
    event = to_audit_event(record(client_address=address), fabric=FABRIC)
    assert event["agent"][0]["network"] == network


def test_no_client_agent_without_an_address() -> None:
    event = to_audit_event(record(client_address=None, interface=Interface.CLI), fabric=FABRIC)
    check_structure(event)
    assert [a["type"]["coding"][0]["code"] for a in event["agent"]] == ["110152", "IRCP"]


def test_denied_access_is_a_minor_failure_with_its_reason() -> None:
    event = to_audit_event(record(outcome=Outcome.DENIED, detail="volume readAce denies read"), fabric=FABRIC)
    check_structure(event)
    assert event["outcome"] == "4" and event["outcomeDesc"] == "volume readAce denies read"


def test_entities() -> None:
    event = to_audit_event(record(), fabric=FABRIC)
    (patient,) = entity_with_role(event, "1")
    assert patient["what"] == {"type": "Patient", "identifier": {"value": "P1"}}
    assert patient["type"]["code"] == "1" and patient["role"]["display"] == "Patient"
    study, series, instance = entity_with_role(event, "3")
    assert study["what"] == {
        "identifier": {"system": DICOM_UID, "value": "urn:oid:1.2.3"},
        "type": "ImagingStudy",
    }
    assert series["what"]["identifier"] == {"system": DICOM_UID, "value": "urn:oid:1.2.3.4"}
    assert instance["what"]["identifier"] == {"system": DICOM_UID, "value": "urn:oid:1.2.3.4.5"}
    assert [e["description"] for e in (study, series, instance)] == [
        "StudyInstanceUID",
        "SeriesInstanceUID",
        "SOPInstanceUID",
    ]
    assert all(e["type"]["code"] == "2" for e in (study, series, instance))
    (data,) = entity_with_role(event, "4")
    assert data["name"] == record().path
    assert data["what"]["identifier"]["value"] == f"mri_2024:{record().path}"
    assert {d["type"]: d["valueString"] for d in data["detail"]} == {
        "volume": "mri_2024",
        "path": record().path,
        "fileId": "2049.33.131250",
    }


def test_unknown_identifiers_are_not_invented() -> None:
    bare = record(
        patient_id=None,
        study_instance_uid=None,
        series_instance_uid=None,
        sop_instance_uid=None,
        volume=None,
        path=None,
        file_id=None,
    )
    event = to_audit_event(bare, fabric=FABRIC)
    check_structure(event)
    assert "entity" not in event


@pytest.mark.parametrize(
    ("changes", "event_type", "action"),
    [
        ({}, (DCM, "110103"), "R"),
        ({"operation": "query"}, (DCM, "110112"), "E"),
        ({"operation": "qido", "study_instance_uid": None}, (DCM, "110112"), "E"),
        ({"operation": "store", "interface": Interface.DIMSE}, (DCM, "110103"), "C"),
        ({"operation": "delete"}, (DCM, "110103"), "D"),
        (
            {"study_instance_uid": None, "series_instance_uid": None, "sop_instance_uid": None,
             "interface": Interface.FUSE},
            (DCM, "110110"),
            "R",
        ),
        (
            {"study_instance_uid": None, "series_instance_uid": None, "sop_instance_uid": None,
             "interface": Interface.API},
            (AUDIT_EVENT_TYPE, "rest"),
            "R",
        ),
        (
            {"study_instance_uid": None, "series_instance_uid": None, "sop_instance_uid": None,
             "interface": Interface.API, "operation": "search"},
            (AUDIT_EVENT_TYPE, "rest"),
            "E",
        ),
        (
            {"patient_id": None, "study_instance_uid": None, "series_instance_uid": None,
             "sop_instance_uid": None, "interface": Interface.S3, "operation": "put"},
            (AUDIT_EVENT_TYPE, "rest"),
            "C",
        ),
        (
            {"patient_id": None, "study_instance_uid": None, "series_instance_uid": None,
             "sop_instance_uid": None, "interface": Interface.FUSE, "operation": "write"},
            ("urn:medfabric:audit-event-type", "data-access"),
            "U",
        ),
    ],
)  # fmt: skip
def test_event_type_and_action(changes: dict[str, Any], event_type: tuple[str, str], action: str) -> None:
    event = to_audit_event(record(**changes), fabric=FABRIC)
    check_structure(event)
    assert (event["type"]["system"], event["type"]["code"]) == event_type
    assert event["action"] == action


def test_rest_events_carry_the_restful_interaction() -> None:
    bare = {
        "patient_id": None,
        "study_instance_uid": None,
        "series_instance_uid": None,
        "sop_instance_uid": None,
    }
    interactions = {
        "read": "read",
        "put": "create",
        "rename": "update",
        "delete": "delete",
        "search": "search",
    }
    for operation, interaction in interactions.items():
        event = to_audit_event(record(interface=Interface.API, operation=operation, **bare), fabric=FABRIC)
        assert event["subtype"][0]["system"] == RESTFUL_INTERACTION
        assert event["subtype"][0]["code"] == interaction


def test_query_entities_have_the_query_role() -> None:
    event = to_audit_event(record(operation="search"), fabric=FABRIC)
    assert entity_with_role(event, "24") and not entity_with_role(event, "4")


@pytest.mark.parametrize(
    ("operation", "action"),
    [("read", "R"), ("GET", "R"), ("list", "R"), ("getattr", "R"), ("create", "C"), ("ingest", "C"),
     ("write", "U"), ("rename", "U"), ("setace", "U"), ("delete", "D"), ("rmdir", "D"), ("query", "E"),
     ("c-find", "E"), ("something-new", "E")],
)  # fmt: skip
def test_event_action(operation: str, action: str) -> None:
    assert event_action(operation) == action


def test_bundle() -> None:
    records = [record(seq=n) for n in (1, 2, 3)]
    bundle = to_bundle(records, fabric=FABRIC)
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "collection"
    assert "total" not in bundle  # bdl-1: total only for search and history bundles
    assert [entry["resource"]["id"] for entry in bundle["entry"]] == ["1", "2", "3"]
    urls = [entry["fullUrl"] for entry in bundle["entry"]]
    assert len(set(urls)) == 3 and all(re.fullmatch(r"urn:uuid:[0-9a-f-]{36}", url) for url in urls)
    assert to_bundle(records, fabric=FABRIC) == bundle  # reproducible
    assert to_bundle(records, fabric="hospital-b")["entry"][0]["fullUrl"] != urls[0]
    assert to_bundle([], fabric=FABRIC) == {"resourceType": "Bundle", "type": "collection", "entry": []}
    for entry in bundle["entry"]:
        check_structure(entry["resource"])


# ----------------------------------------------------------- validation against the R4 schema

HAVE_FHIR_RESOURCES = (
    importlib.util.find_spec("fhir") is not None
)  # the test extra; structure checks run anyway


def _validate(resource: dict[str, Any]) -> None:
    """Validate against the R4(B) schema: element names, cardinalities, primitive formats."""
    if not HAVE_FHIR_RESOURCES:
        return
    from fhir.resources.R4B.auditevent import AuditEvent
    from fhir.resources.R4B.bundle import Bundle

    if resource["resourceType"] == "AuditEvent":
        AuditEvent.model_validate(resource)
    else:
        Bundle.model_validate(resource)


def test_validates_against_the_fhir_schema() -> None:
    if not HAVE_FHIR_RESOURCES:
        pytest.skip("fhir.resources (test extra) is not installed")
    _validate(to_audit_event(record(), fabric=FABRIC))
    _validate(to_audit_event(record(outcome=Outcome.DENIED, detail="no"), fabric=FABRIC))
    _validate(to_bundle([record(seq=n) for n in range(1, 4)], fabric=FABRIC))


awkward_text = st.sampled_from(["\udcff", "\x00x", "\xa0", " a ", "\u2028", "a\xa0b", "\t", "x\ny", "é"])
any_text = st.text(max_size=12) | awkward_text
optional_text = st.none() | any_text
uids = st.none() | st.from_regex(r"[12](\.[1-9][0-9]{0,5}){1,6}", fullmatch=True) | st.just("1.2.3\x00")
records = st.builds(
    AuditRecord,
    seq=st.integers(1, 10**12),
    time_us=st.integers(0, 253_402_300_799_999_999),
    principal=any_text.filter(bool),
    client_address=st.none() | st.sampled_from(["10.0.0.1", "[::1]:80", "host.example.org", "ct-1:104"]),
    interface=st.sampled_from(Interface),
    operation=st.sampled_from(["read", "write", "create", "query", "unknown-op", " odd  op ", "\t"]),
    outcome=st.sampled_from(Outcome),
    volume=optional_text,
    path=optional_text,
    file_id=optional_text,
    patient_id=optional_text,
    study_instance_uid=uids,
    series_instance_uid=uids,
    sop_instance_uid=uids,
    detail=optional_text,
)


@given(records)
@settings(max_examples=150, deadline=None)
def test_any_record_exports_to_a_valid_audit_event(any_record: AuditRecord) -> None:
    event = to_audit_event(any_record, fabric=FABRIC)
    check_structure(event)
    _validate(event)


def test_text_is_made_into_valid_fhir_strings() -> None:
    event = to_audit_event(
        record(
            path="/bad/\udcff name\x01.dcm",
            study_instance_uid="1.2.3\x00",
            detail="   ",
            principal=" jdoe ",
            operation=" read ",
        ),
        fabric=FABRIC,
    )
    check_structure(event)
    (data,) = entity_with_role(event, "4")
    assert data["name"] == "/bad/\\udcff name\\x01.dcm"
    assert entity_with_role(event, "3")[0]["what"]["identifier"]["value"] == "urn:oid:1.2.3"
    assert "outcomeDesc" not in event  # blank: FHIR has no empty strings
    assert event["agent"][-1]["name"] == "jdoe"
    assert {"system": "urn:medfabric:operation", "code": "read"} in event["subtype"]
    with pytest.raises(InvalidInput, match="fabric name"):
        to_audit_event(record(), fabric="  ")
