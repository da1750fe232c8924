"""Synthetic patients: names in several scripts, identifiers, birth dates, addresses, phone numbers.

Every value here is PHI on purpose — the de-identification work tests against it — and all of it
is invented. A patient depends only on (seed, index), so worker processes can rebuild it alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

import numpy as np

# A person's name in the three DICOM PN component groups: alphabetic, ideographic, phonetic.
NamePart = tuple[str, str, str]
T = TypeVar("T")


@dataclass(frozen=True)
class Culture:
    """Where a patient (and the hospital that images them) comes from, and how its text is encoded."""

    key: str
    specific_character_set: str | None  # None: the default repertoire (ASCII) only
    family_names: tuple[NamePart, ...]
    given_names: tuple[tuple[NamePart, str], ...]  # (name, PatientSex)
    street_templates: tuple[str, ...]  # formatted with {n}: a house number
    phone_template: str  # formatted with {a}, {b}: random digit groups
    other_id_issuer: str
    ideographic_text_order: bool  # free text writes the name as family + given, without a space


def _latin(*names: str) -> tuple[NamePart, ...]:
    return tuple((name, "", "") for name in names)


CULTURES: dict[str, Culture] = {
    culture.key: culture
    for culture in (
        Culture(
            key="german",
            specific_character_set="ISO_IR 100",
            family_names=_latin(
                "Müller", "Schröder", "Weiß", "Köhler", "Großmann", "Bäcker", "Schäfer", "Hößl"
            ),
            given_names=(
                (("Jürgen", "", ""), "M"),
                (("Jörg", "", ""), "M"),
                (("Käthe", "", ""), "F"),
                (("Günther", "", ""), "M"),
                (("Ursula", "", ""), "F"),
                (("Dörte", "", ""), "F"),
            ),
            street_templates=(
                "Hauptstraße {n}, 10115 Berlin",
                "Königsallee {n}, 40212 Düsseldorf",
                "Mühlenweg {n}, 20095 Hamburg",
            ),
            phone_template="+49 30 {a}{b}",
            other_id_issuer="DE-KVNR",
            ideographic_text_order=False,
        ),
        Culture(
            key="nordic",
            specific_character_set="ISO_IR 192",
            family_names=_latin("Østergård", "Sørensen", "Ødegaard", "Åberg", "Lindström", "Kjærsgaard"),
            given_names=(
                (("Åse", "", ""), "F"),
                (("Søren", "", ""), "M"),
                (("Bjørn", "", ""), "M"),
                (("Åsa", "", ""), "F"),
                (("Jørgen", "", ""), "M"),
                (("Þórunn", "", ""), "F"),
            ),
            street_templates=("Østerbrogade {n}, 2100 København Ø", "Åboulevard {n}, 1960 Frederiksberg C"),
            phone_template="+45 {a}{b}",
            other_id_issuer="DK-CPR",
            ideographic_text_order=False,
        ),
        Culture(
            key="japanese",
            specific_character_set="ISO_IR 192",
            family_names=(
                ("Yamada", "山田", "やまだ"),
                ("Tanaka", "田中", "たなか"),
                ("Suzuki", "鈴木", "すずき"),
                ("Sato", "佐藤", "さとう"),
            ),
            given_names=(
                (("Tarou", "太郎", "たろう"), "M"),
                (("Hanako", "花子", "はなこ"), "F"),
                (("Yuki", "由紀", "ゆき"), "F"),
                (("Kenji", "健二", "けんじ"), "M"),
            ),
            street_templates=("東京都千代田区丸の内{n}-2-3", "大阪府大阪市北区梅田{n}-1-1"),
            phone_template="+81 3-{a}-{b}",
            other_id_issuer="JP-HOKEN",
            ideographic_text_order=True,
        ),
        Culture(
            key="chinese",
            specific_character_set="ISO_IR 192",
            family_names=(
                ("Wang", "王", ""),
                ("Li", "李", ""),
                ("Zhang", "张", ""),
                ("Chen", "陈", ""),
            ),
            given_names=(
                (("Xiaodong", "小东", ""), "M"),
                (("Mei", "美", ""), "F"),
                (("Wei", "伟", ""), "M"),
                (("Jing", "静", ""), "F"),
            ),
            street_templates=("北京市朝阳区建国路{n}号", "上海市浦东新区世纪大道{n}号"),
            phone_template="+86 10 {a}{b}",
            other_id_issuer="CN-SSN",
            ideographic_text_order=True,
        ),
        Culture(
            key="english",
            specific_character_set=None,
            family_names=_latin("Smith", "Johnson", "O'Brien", "Brown", "Taylor", "Walker"),
            given_names=(
                (("John", "", ""), "M"),
                (("Mary", "", ""), "F"),
                (("Patrick", "", ""), "M"),
                (("Emily", "", ""), "F"),
                (("Oliver", "", ""), "M"),
            ),
            street_templates=("{n} Baker Street, London NW1 6XE", "{n} Elm Road, Leeds LS1 4AP"),
            phone_template="+44 20 {a} {b}",
            other_id_issuer="UK-NHS",
            ideographic_text_order=False,
        ),
        Culture(
            key="french",
            specific_character_set="ISO_IR 100",
            family_names=_latin("Lefèvre", "Dubois", "Gagné", "Béranger", "Lemaître"),
            given_names=(
                (("François", "", ""), "M"),
                (("Hélène", "", ""), "F"),
                (("Zoé", "", ""), "F"),
                (("Jérôme", "", ""), "M"),
            ),
            street_templates=("{n} rue de la Paix, 75002 Paris", "{n} quai Saint-Éloi, 69002 Lyon"),
            phone_template="+33 1 {a}{b}",
            other_id_issuer="FR-NIR",
            ideographic_text_order=False,
        ),
        Culture(
            key="korean",
            specific_character_set="ISO_IR 192",
            family_names=(
                ("Hong", "洪", "홍"),
                ("Kim", "金", "김"),
                ("Park", "朴", "박"),
            ),
            given_names=(
                (("Gildong", "吉童", "길동"), "M"),
                (("Minji", "敏智", "민지"), "F"),
                (("Jiwoo", "智友", "지우"), "F"),
            ),
            street_templates=("서울특별시 종로구 세종대로 {n}", "부산광역시 해운대구 해운대로 {n}"),
            phone_template="+82 2-{a}-{b}",
            other_id_issuer="KR-RRN",
            ideographic_text_order=True,
        ),
    )
}


# The first patients of every corpus cover the scripts a de-identifier must handle; later
# patients cycle through all cultures, the plain-ASCII one included.
_FIRST_CULTURES = ("german", "nordic", "japanese", "chinese")
_LATER_CULTURES = ("english", "french", "korean", "german", "nordic", "japanese", "chinese", "english")


@dataclass(frozen=True)
class Patient:
    """One synthetic patient and every identifying value planted in their files."""

    index: int
    directory: str
    culture: Culture
    PatientID: str
    IssuerOfPatientID: str
    PatientName: str  # the PN value as stored, component groups joined by "="
    name_in_text: tuple[str, ...]  # how staff type the name into free text
    PatientBirthDate: str
    PatientSex: str
    PatientAddress: str
    PatientTelephoneNumbers: str
    PatientMotherBirthName: str
    OtherPatientNames: str
    other_patient_ids: tuple[tuple[str, str], ...]  # (PatientID, IssuerOfPatientID)
    PatientSize: float  # metres
    PatientWeight: float  # kilograms
    body_variant: int  # selects a phantom shape, so patients differ in their pixels too

    @property
    def specific_character_set(self) -> str | None:
        return self.culture.specific_character_set

    def phi(self) -> dict[str, list[str]]:
        """The identifying strings of this patient, by the attribute they were planted from."""
        return {
            "PatientName": [self.PatientName],
            "PatientNameInText": list(self.name_in_text),
            "PatientID": [self.PatientID],
            "OtherPatientIDs": [patient_id for patient_id, _ in self.other_patient_ids],
            "OtherPatientNames": [self.OtherPatientNames],
            "PatientBirthDate": [self.PatientBirthDate],
            "PatientAddress": [self.PatientAddress],
            "PatientTelephoneNumbers": [self.PatientTelephoneNumbers],
            "PatientMotherBirthName": [self.PatientMotherBirthName],
        }


def patient_rng(seed: int, index: int, purpose: str) -> np.random.Generator:
    """An independent random stream per (seed, patient, purpose): order of generation never matters."""
    return np.random.default_rng([seed, index, *purpose.encode()])


def pick(rng: np.random.Generator, choices: tuple[T, ...] | list[T]) -> T:
    return choices[int(rng.integers(len(choices)))]


def person_name(family: NamePart, given: NamePart) -> str:
    """Join family and given names into a DICOM PN value, dropping empty trailing groups."""
    groups = [f"{family[g]}^{given[g]}" if family[g] else "" for g in range(3)]
    while groups and not groups[-1]:
        groups.pop()
    return "=".join(groups)


def _digits(rng: np.random.Generator, count: int) -> str:
    return "".join(str(int(d)) for d in rng.integers(0, 10, count))


def make_patient(seed: int, index: int) -> Patient:
    rng = patient_rng(seed, index, "identity")
    culture_key = (
        _FIRST_CULTURES[index]
        if index < len(_FIRST_CULTURES)
        else (_LATER_CULTURES[(index - len(_FIRST_CULTURES)) % len(_LATER_CULTURES)])
    )
    culture = CULTURES[culture_key]
    family = pick(rng, culture.family_names)
    given, sex = pick(rng, culture.given_names)
    other_family = pick(rng, culture.family_names)
    mother_given, _ = pick(rng, tuple(g for g in culture.given_names if g[1] == "F"))
    if culture.ideographic_text_order:
        name_in_text: tuple[str, ...] = (f"{given[0]} {family[0]}", f"{family[1]}{given[1]}")
    else:
        name_in_text = (f"{given[0]} {family[0]}",)
    year = int(rng.integers(1932, 2016))
    month, day = int(rng.integers(1, 13)), int(rng.integers(1, 29))
    a, b = _digits(rng, 4), _digits(rng, 4)
    return Patient(
        index=index,
        directory=f"PAT{index + 1:04d}",
        culture=culture,
        PatientID=f"MF{index + 1:05d}{_digits(rng, 2)}",
        IssuerOfPatientID="MEDFABRIC SYNTH MRN",
        PatientName=person_name(family, given),
        name_in_text=name_in_text,
        PatientBirthDate=f"{year:04d}{month:02d}{day:02d}",
        PatientSex=sex,
        PatientAddress=pick(rng, culture.street_templates).format(n=int(rng.integers(1, 200))),
        PatientTelephoneNumbers=culture.phone_template.format(a=a, b=b),  # SH: at most 16 characters
        PatientMotherBirthName=person_name(other_family, mother_given),
        OtherPatientNames=person_name(pick(rng, culture.family_names), given),
        other_patient_ids=(
            (f"{chr(65 + int(rng.integers(26)))}{_digits(rng, 9)}", culture.other_id_issuer),
            (f"OLD-{_digits(rng, 6)}", "LEGACY RIS"),
        ),
        PatientSize=round(float(rng.uniform(1.50, 1.95)), 2),
        PatientWeight=round(float(rng.uniform(48.0, 110.0)), 1),
        body_variant=int(rng.integers(3)),
    )
