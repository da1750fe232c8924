"""Plants PHI where a de-identifier must look beyond the obvious: demographics, nested sequences,
private tags under a private creator (and an opaque private blob), and free text.

The values are the patient's and the study's own (see Patient.phi and StudyPlan.phi), so the
manifest can list, per patient, every string that must never survive de-identification.
"""

from __future__ import annotations

from pydicom import Dataset
from pydicom.sequence import Sequence

from .patients import Patient
from .studies import StudyPlan

PRIVATE_CREATOR = "MEDFABRIC SYNTH 1.0"
PRIVATE_GROUP = 0x0009
# A second private block whose only value is an opaque blob, as vendors' binary headers are:
# the patient's name is in it, but no parser will find it by attribute.
BLOB_PRIVATE_CREATOR = "MEDFABRIC SYNTH BLOB"
BLOB_PRIVATE_GROUP = 0x0029

# Element offsets inside the private block (tag = (group, 0xBB00 | offset), BB = the block byte).
PRIVATE_PATIENT_NAME = 0x01
PRIVATE_PATIENT_ID = 0x02
PRIVATE_BIRTH_DATE = 0x03
PRIVATE_NOTE = 0x04
PRIVATE_SEQUENCE = 0x10
BLOB_ELEMENT = 0x10

# Where the manifest's PHI strings were planted, for whoever writes the de-identification profile.
PHI_LOCATIONS: tuple[str, ...] = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "OtherPatientNames",
    "PatientAddress",
    "PatientTelephoneNumbers",
    "PatientMotherBirthName",
    "PatientComments",
    "OtherPatientIDsSequence[].PatientID",
    "ReferencedPatientSequence[].PatientName",
    "ReferencedPatientSequence[].PatientID",
    "AccessionNumber",
    "ReferringPhysicianName",
    "PhysiciansOfRecord",
    "NameOfPhysiciansReadingStudy",
    "PerformingPhysicianName",
    "OperatorsName",
    "InstitutionName",
    "InstitutionAddress",
    "StationName",
    "DeviceSerialNumber",
    "StudyDescription",
    "AdditionalPatientHistory",
    "ImageComments",
    "ProcedureCodeSequence[].CodeMeaning",
    "RequestAttributesSequence[].AccessionNumber",
    "RequestAttributesSequence[].RequestedProcedureDescription",
    "RequestAttributesSequence[].ReasonForTheRequestedProcedure",
    f"({PRIVATE_GROUP:04X},xx{PRIVATE_PATIENT_NAME:02X}..{PRIVATE_NOTE:02X}) {PRIVATE_CREATOR}",
    f"({PRIVATE_GROUP:04X},xx{PRIVATE_SEQUENCE:02X})[].PatientName/PatientID {PRIVATE_CREATOR}",
    f"({BLOB_PRIVATE_GROUP:04X},xx{BLOB_ELEMENT:02X}) OB {BLOB_PRIVATE_CREATOR}",
)


def _text_name(patient: Patient) -> str:
    """The name as staff type it (for CJK names the ideographic form, the way it is written locally)."""
    return patient.name_in_text[-1]


def add_patient_demographics(ds: Dataset, patient: Patient, *, referenced_patient_uid: str) -> None:
    ds.PatientAddress = patient.PatientAddress
    ds.PatientTelephoneNumbers = patient.PatientTelephoneNumbers
    ds.PatientMotherBirthName = patient.PatientMotherBirthName
    ds.PatientComments = (
        f"Next of kin: {patient.PatientMotherBirthName.split('=')[0].replace('^', ' ')} "
        f"(mother), tel. {patient.PatientTelephoneNumbers}. Home: {patient.PatientAddress}."
    )
    other_ids = []
    for patient_id, issuer in patient.other_patient_ids:
        item = Dataset()
        item.PatientID = patient_id
        item.IssuerOfPatientID = issuer
        item.TypeOfPatientID = "TEXT"
        other_ids.append(item)
    ds.OtherPatientIDsSequence = Sequence(other_ids)
    reference = Dataset()
    reference.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.1.1"  # Detached Patient Management (retired)
    reference.ReferencedSOPInstanceUID = referenced_patient_uid
    # Non-standard in this macro, but RIS integrations do copy the identity here.
    reference.PatientName = patient.PatientName
    reference.PatientID = patient.PatientID
    ds.ReferencedPatientSequence = Sequence([reference])


def add_study_phi(ds: Dataset, patient: Patient, study: StudyPlan) -> None:
    name = _text_name(patient)
    ds.StudyDescription = f"{study.study_type.StudyDescription} {name}"
    ds.AdditionalPatientHistory = (
        f"{name}, MRN {patient.PatientID}: follow-up, see prior {study.AccessionNumber}."
    )
    code_value, scheme, meaning = study.study_type.procedure_code
    code = Dataset()
    code.CodeValue = code_value
    code.CodingSchemeDesignator = scheme
    code.CodeMeaning = f"{meaning} - {name}"
    ds.ProcedureCodeSequence = Sequence([code])


def add_request_attributes(ds: Dataset, patient: Patient, study: StudyPlan) -> None:
    name = _text_name(patient)
    request = Dataset()
    request.RequestedProcedureID = f"RP{study.AccessionNumber}"
    request.AccessionNumber = study.AccessionNumber
    request.StudyInstanceUID = study.StudyInstanceUID
    request.RequestedProcedureDescription = f"{study.study_type.procedure_code[2]} for {name}"
    request.ReasonForTheRequestedProcedure = f"Follow-up {name} MRN {patient.PatientID}"
    request.ScheduledProcedureStepID = f"SPS{study.AccessionNumber}"
    request.ScheduledProcedureStepDescription = study.study_type.StudyDescription
    ds.RequestAttributesSequence = Sequence([request])


def image_comments(patient: Patient) -> str:
    names = " / ".join(patient.name_in_text)
    return (
        f"Pt {names}, MRN {patient.PatientID}, DOB {patient.PatientBirthDate}, "
        f"tel. {patient.PatientTelephoneNumbers}"
    )


def add_private_phi(ds: Dataset, patient: Patient) -> None:
    block = ds.private_block(PRIVATE_GROUP, PRIVATE_CREATOR, create=True)
    block.add_new(PRIVATE_PATIENT_NAME, "PN", patient.PatientName)
    block.add_new(PRIVATE_PATIENT_ID, "LO", patient.PatientID)
    block.add_new(PRIVATE_BIRTH_DATE, "DA", patient.PatientBirthDate)
    block.add_new(PRIVATE_NOTE, "LT", f"Registered as {patient.name_in_text[0]} ({patient.PatientID})")
    identity = Dataset()
    identity.PatientName = patient.PatientName
    identity.PatientID = patient.PatientID
    block.add_new(PRIVATE_SEQUENCE, "SQ", Sequence([identity]))
    blob = ds.private_block(BLOB_PRIVATE_GROUP, BLOB_PRIVATE_CREATOR, create=True)
    payload = f"HDR1;NAME={patient.PatientName};ID={patient.PatientID};".encode()
    blob.add_new(BLOB_ELEMENT, "OB", payload + b"\0" * (len(payload) % 2))
