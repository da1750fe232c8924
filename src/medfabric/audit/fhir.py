"""Export audit records as FHIR R4 ``AuditEvent`` resources (JSON), following IHE BALP and DICOM PS3.15.

A one-way, lossless-enough translation for SIEMs and FHIR servers; it never changes, filters or
re-orders records, and it never invents patient data the record does not carry.

Mapping (BALP's pattern: client = Source Role ID, server = Destination Role ID, user = information
recipient and the requestor):
- ``type``, first match: DCM 110112 "Query" for a search over DICOMweb/DIMSE or naming DICOM UIDs;
  DCM 110103 "DICOM Instances Accessed" when a study, series or instance UID is known; BALP's
  audit-event-type ``rest`` for the other HTTP requests (api, s3, webhdfs, dicomweb); DCM 110110
  "Patient Record" when only the patient is known; else ``urn:medfabric:audit-event-type#data-access``
  (the binding is extensible) for cli, fuse and dimse.
- ``subtype``: restful-interaction (read/create/update/delete/search) for ``rest``, and always our
  own operation and interface codings.
- ``action`` C/R/U/D/E from the operation; ``outcome`` 0 (allowed) or 4 (minor failure: denied),
  with the record's detail as ``outcomeDesc``.
- ``entity``: the patient (Patient reference by identifier, type 1 Person, role 1 Patient), the
  study/series/instance (identifier system ``urn:dicom:uid``, value ``urn:oid:<uid>``, type 2 System
  Object, role 3 Report, as DICOM audit messages use for studies), and the file (volume, path, file
  id; role 24 Query for searches, else 4 Domain Resource).
"""

from __future__ import annotations

import ipaddress
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from medfabric.audit.chain import AuditRecord, Interface, Outcome
from medfabric.errors import InvalidInput

JsonObject = dict[str, Any]

DCM = "http://dicom.nema.org/resources/ontology/DCM"
AUDIT_EVENT_TYPE = "http://terminology.hl7.org/CodeSystem/audit-event-type"
RESTFUL_INTERACTION = "http://hl7.org/fhir/restful-interaction"
PARTICIPATION_TYPE = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
SOURCE_TYPE = "http://terminology.hl7.org/CodeSystem/security-source-type"
ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
DICOM_UID = "urn:dicom:uid"
MEDFABRIC_EVENT_TYPE = "urn:medfabric:audit-event-type"
MEDFABRIC_OPERATION = "urn:medfabric:operation"
MEDFABRIC_INTERFACE = "urn:medfabric:interface"
MEDFABRIC_PRINCIPAL = "urn:medfabric:principal"
MEDFABRIC_FABRIC = "urn:medfabric:fabric"
MEDFABRIC_PATH = "urn:medfabric:path"
_BUNDLE_NAMESPACE = uuid.UUID("4f6c1b0e-7a51-5d2c-9a3e-6d6564666162")  # fixed: fullUrls are reproducible

_OPERATIONS_BY_ACTION = (
    ("C", "create put store stow ingest import mkdir upload copy c-store"),
    ("R", "read get open download retrieve wado list readdir getattr stat head lookup getace export"),
    ("R", "c-get c-move"),
    ("U", "write update modify append rename move setattr chmod chown setace truncate patch"),
    ("D", "delete remove unlink rmdir"),
    ("E", "query search find qido c-find"),
)
_ACTION_BY_OPERATION = {op: code for code, ops in _OPERATIONS_BY_ACTION for op in ops.split()}
_QUERY_OPERATIONS = frozenset(op for op, code in _ACTION_BY_OPERATION.items() if code == "E")
_INTERACTION = {"C": "create", "R": "read", "U": "update", "D": "delete", "E": "search"}
_HTTP_INTERFACES = frozenset({Interface.API, Interface.S3, Interface.WEBHDFS, Interface.DICOMWEB})
_DICOM_INTERFACES = frozenset({Interface.DICOMWEB, Interface.DIMSE})


def event_action(operation: str) -> str:
    """FHIR ``AuditEvent.action`` (C, R, U, D or E) for one of our operation names; unknown → E."""
    return _ACTION_BY_OPERATION.get(operation.lower(), "E")


def _coding(system: str, code: str, display: str | None = None) -> JsonObject:
    coding: JsonObject = {"system": system, "code": code}
    if display is not None:
        coding["display"] = display
    return coding


def _instant(record: AuditRecord) -> str:
    at = record.recorded_at
    return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond:06d}Z"


def _network(address: str) -> JsonObject:
    """Host part of ``address`` with type 2 (IP address) or 1 (machine name); a port is dropped."""
    host = address.strip()
    if host.startswith("[") and "]" in host:  # [v6]:port
        host = host[1 : host.index("]")]
    elif host.count(":") == 1:  # v4:port or name:port
        host = host.split(":", 1)[0]
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return {"address": host, "type": "1"}
    return {"address": host, "type": "2"}


def _string(value: str | None) -> str | None:
    """A FHIR ``string``: C0 controls and lone surrogates escaped, outer whitespace trimmed, never empty."""
    if value is None:
        return None
    escaped = "".join(
        f"\\x{ord(ch):02x}" if ord(ch) < 32 and ch not in "\t\r\n"
        else f"\\u{ord(ch):04x}" if 0xD800 <= ord(ch) <= 0xDFFF
        else ch
        for ch in value
    )  # fmt: skip
    return escaped.strip() or None


def _code(value: str) -> str | None:
    """A FHIR ``code``: no leading, trailing or repeated whitespace."""
    return _string(" ".join(value.split()))


def _uid(value: str | None) -> str | None:
    return _string(value.strip(" \x00")) if value is not None else None  # DICOM pads UIDs with NUL


@dataclass(frozen=True, slots=True)
class _Texts:
    """The record's text fields as FHIR strings (``None`` where absent or blank)."""

    principal: str | None
    client_address: str | None
    volume: str | None
    path: str | None
    file_id: str | None
    patient_id: str | None
    study_instance_uid: str | None
    series_instance_uid: str | None
    sop_instance_uid: str | None
    detail: str | None

    @classmethod
    def of(cls, record: AuditRecord) -> _Texts:
        return cls(
            principal=_string(record.principal),
            client_address=_string(record.client_address),
            volume=_string(record.volume),
            path=_string(record.path),
            file_id=_string(record.file_id),
            patient_id=_string(record.patient_id),
            study_instance_uid=_uid(record.study_instance_uid),
            series_instance_uid=_uid(record.series_instance_uid),
            sop_instance_uid=_uid(record.sop_instance_uid),
            detail=_string(record.detail),
        )


def _event_type(texts: _Texts, interface: Interface, is_query: bool) -> JsonObject:
    has_dicom = any((texts.study_instance_uid, texts.series_instance_uid, texts.sop_instance_uid))
    if is_query and (has_dicom or interface in _DICOM_INTERFACES):
        return _coding(DCM, "110112", "Query")
    if has_dicom:
        return _coding(DCM, "110103", "DICOM Instances Accessed")
    if interface in _HTTP_INTERFACES:
        return _coding(AUDIT_EVENT_TYPE, "rest", "Restful Operation")
    if texts.patient_id:
        return _coding(DCM, "110110", "Patient Record")
    return _coding(MEDFABRIC_EVENT_TYPE, "data-access", "Data access")


def _uid_entity(uid: str, description: str, resource_type: str | None = None) -> JsonObject:
    what: JsonObject = {"identifier": {"system": DICOM_UID, "value": f"urn:oid:{uid}"}}
    if resource_type is not None:
        what["type"] = resource_type
    return {
        "what": what,
        "type": _coding(ENTITY_TYPE, "2", "System Object"),
        "role": _coding(OBJECT_ROLE, "3", "Report"),
        "description": description,
    }


def _entities(texts: _Texts, is_query: bool) -> list[JsonObject]:
    entities: list[JsonObject] = []
    if texts.patient_id:
        entities.append(
            {
                "what": {"type": "Patient", "identifier": {"value": texts.patient_id}},
                "type": _coding(ENTITY_TYPE, "1", "Person"),
                "role": _coding(OBJECT_ROLE, "1", "Patient"),
            }
        )
    if texts.study_instance_uid:
        entities.append(_uid_entity(texts.study_instance_uid, "StudyInstanceUID", "ImagingStudy"))
    if texts.series_instance_uid:
        entities.append(_uid_entity(texts.series_instance_uid, "SeriesInstanceUID"))
    if texts.sop_instance_uid:
        entities.append(_uid_entity(texts.sop_instance_uid, "SOPInstanceUID"))
    details = [
        {"type": name, "valueString": value}
        for name, value in (("volume", texts.volume), ("path", texts.path), ("fileId", texts.file_id))
        if value
    ]
    if details:
        role = (
            _coding(OBJECT_ROLE, "24", "Query") if is_query else _coding(OBJECT_ROLE, "4", "Domain Resource")
        )
        file_entity: JsonObject = {"type": _coding(ENTITY_TYPE, "2", "System Object"), "role": role}
        if texts.path:
            location = f"{texts.volume}:{texts.path}" if texts.volume else texts.path
            file_entity["what"] = {"identifier": {"system": MEDFABRIC_PATH, "value": location}}
            file_entity["name"] = texts.path
        file_entity["detail"] = details
        entities.append(file_entity)
    return entities


def _agents(texts: _Texts, fabric_reference: JsonObject) -> list[JsonObject]:
    agents: list[JsonObject] = []
    if texts.client_address:
        agents.append(
            {
                "type": {"coding": [_coding(DCM, "110153", "Source Role ID")]},
                "who": {"display": texts.client_address},
                "requestor": False,
                "network": _network(texts.client_address),
            }
        )
    agents.append(
        {
            "type": {"coding": [_coding(DCM, "110152", "Destination Role ID")]},
            "who": fabric_reference,
            "requestor": False,
        }
    )
    user: JsonObject = {"type": {"coding": [_coding(PARTICIPATION_TYPE, "IRCP", "information recipient")]}}
    if texts.principal:
        user["who"] = {
            "identifier": {"system": MEDFABRIC_PRINCIPAL, "value": texts.principal},
            "display": texts.principal,
        }
        user["name"] = texts.principal
    user["requestor"] = True
    agents.append(user)
    return agents


def to_audit_event(record: AuditRecord, *, fabric: str) -> JsonObject:
    """One FHIR R4 ``AuditEvent`` for ``record``; ``fabric`` names this fabric (the audit source)."""
    fabric_name = _string(fabric)
    if fabric_name is None:
        raise InvalidInput("the fabric name for an AuditEvent's source must not be blank")
    texts = _Texts.of(record)
    action = event_action(record.operation)
    is_query = record.operation.lower() in _QUERY_OPERATIONS
    event_type = _event_type(texts, record.interface, is_query)
    subtype = [_coding(MEDFABRIC_INTERFACE, record.interface.value)]
    operation_code = _code(record.operation)
    if operation_code is not None:
        subtype.insert(0, _coding(MEDFABRIC_OPERATION, operation_code))
    if event_type["code"] == "rest":
        subtype.insert(0, _coding(RESTFUL_INTERACTION, _INTERACTION[action], _INTERACTION[action]))
    fabric_reference = {
        "identifier": {"system": MEDFABRIC_FABRIC, "value": fabric_name},
        "display": fabric_name,
    }
    event: JsonObject = {
        "resourceType": "AuditEvent",
        "id": str(record.seq),
        "type": event_type,
        "subtype": subtype,
        "action": action,
        "recorded": _instant(record),
        "outcome": "0" if record.outcome is Outcome.ALLOWED else "4",
        "agent": _agents(texts, fabric_reference),
        "source": {
            "site": fabric_name,
            "observer": fabric_reference,
            "type": [_coding(SOURCE_TYPE, "4", "Application Server")],
        },
    }
    if texts.detail:
        event["outcomeDesc"] = texts.detail
    entities = _entities(texts, is_query)
    if entities:
        event["entity"] = entities
    return event


def to_bundle(records: Iterable[AuditRecord], *, fabric: str) -> JsonObject:
    """A ``Bundle`` of type ``collection`` holding one ``AuditEvent`` per record, in order."""
    entries = [
        {
            "fullUrl": f"urn:uuid:{uuid.uuid5(_BUNDLE_NAMESPACE, f'{fabric}/{record.seq}')}",
            "resource": to_audit_event(record, fabric=fabric),
        }
        for record in records
    ]
    return {"resourceType": "Bundle", "type": "collection", "entry": entries}
