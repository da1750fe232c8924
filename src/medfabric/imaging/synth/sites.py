"""Synthetic hospitals: institution names and addresses, departments, stations, equipment and staff.

A patient is imaged at the hospitals of their own culture, so every string in one file can be
encoded in that patient's SpecificCharacterSet. All names are invented.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Equipment:
    """General Equipment module values of one kind of scanner (fictitious vendors)."""

    Manufacturer: str
    ManufacturerModelName: str
    SoftwareVersions: str


EQUIPMENT: dict[str, Equipment] = {
    "CT": Equipment("Tomographix", "TX-Helix 128", "TXH VB42A"),
    "MR": Equipment("Magnetica", "Aurora 1.5T", "AUR 11.2.3"),
    "CR": Equipment("RadiPlate", "RP-CR 3000", "RP 5.0.1"),
    "US": Equipment("Sonora", "Sonora S7", "S7 3.4"),
    "OT": Equipment("MEDFABRIC", "SynthCapture", "1.0"),
}


@dataclass(frozen=True)
class Institution:
    key: str
    InstitutionName: str
    InstitutionAddress: str
    InstitutionalDepartmentName: str
    station_prefix: str
    referring_physicians: tuple[str, ...]
    radiologists: tuple[str, ...]
    operators: tuple[str, ...]

    def station_name(self, modality: str) -> str:
        """StationName (SH, at most 16 characters), e.g. ``NORD_CT01``."""
        return f"{self.station_prefix}_{modality}01"

    def device_serial_number(self, modality: str) -> str:
        return f"SN-{self.station_prefix}-{modality}-{sum(map(ord, self.key + modality)) * 37 % 100000:05d}"


INSTITUTIONS: dict[str, tuple[Institution, ...]] = {
    "german": (
        Institution(
            "nordstadt",
            "Universitätsklinikum Nordstadt",
            "Klinikstraße 1, 30167 Hannover",
            "Radiologie",
            "NORD",
            ("Weiß^Clara^^Dr. med.", "Hoffmann^Peter^^Dr. med.", "Brückner^Sabine^^Dr. med."),
            ("Krämer^Thomas^^Prof. Dr.", "Lößner^Anke^^Dr."),
            ("Schütz^Melanie", "Öztürk^Deniz", "Fuchs^Tobias"),
        ),
        Institution(
            "sued",
            "Kreiskrankenhaus Süd",
            "Am Gänsemarkt 7, 79098 Freiburg",
            "Diagnostische Radiologie",
            "KKSUED",
            ("Nußbaum^Heinz^^Dr.", "Jäger^Petra^^Dr."),
            ("Zöllner^Martin^^Dr.",),
            ("Bär^Sandra", "Kühn^Felix"),
        ),
    ),
    "nordic": (
        Institution(
            "osterbro",
            "Østerbro Hospital",
            "Blegdamsvej 9, 2100 København Ø",
            "Røntgenafdelingen",
            "OSTB",
            ("Kjær^Mette^^Dr.", "Hjørth^Anders^^Dr."),
            ("Bødker^Lærke^^Dr.",),
            ("Frøslev^Ida", "Ågård^Mads"),
        ),
    ),
    "japanese": (
        Institution(
            "tokyo",
            "東京中央病院",
            "東京都中央区築地5-1-1",
            "放射線科",
            "TKC",
            ("Sato^Ichiro=佐藤^一郎=さとう^いちろう", "Ito^Akiko=伊藤^明子=いとう^あきこ"),
            ("Kato^Hiroshi=加藤^博=かとう^ひろし",),
            ("Kobayashi^Mai=小林^舞=こばやし^まい", "Yoshida^Ren=吉田^蓮=よしだ^れん"),
        ),
    ),
    "chinese": (
        Institution(
            "chenguang",
            "北京晨光医院",
            "北京市海淀区中关村大街27号",
            "放射科",
            "BJCG",
            ("Zhao^Lei=赵^磊", "Sun^Li=孙^丽"),
            ("Zhou^Jun=周^军",),
            ("Wu^Fang=吴^芳", "Xu^Tao=徐^涛"),
        ),
    ),
    "english": (
        Institution(
            "stmary",
            "St. Mary's General Hospital",
            "1 Hospital Way, London W2 1NY",
            "Radiology",
            "STMGH",
            ("Hughes^Eleanor^^Dr.", "Patel^Ravi^^Dr.", "McAllister^Fiona^^Dr."),
            ("Grant^Simon^^Dr.",),
            ("Evans^Chloe", "Ward^Liam"),
        ),
        Institution(
            "riverside",
            "Riverside Imaging Center",
            "400 River Road, Leeds LS2 9JT",
            "Imaging",
            "RIVIC",
            ("Collins^Mark^^Dr.",),
            ("Shaw^Hannah^^Dr.",),
            ("Price^Owen",),
        ),
    ),
    "french": (
        Institution(
            "tilleuls",
            "Clinique des Tilleuls",
            "3 avenue Jean-Jaurès, 69007 Lyon",
            "Imagerie médicale",
            "TILL",
            ("Benoît^Aurélie^^Dr", "Mercier^Rémi^^Dr"),
            ("Faure^Cécile^^Pr",),
            ("Lacroix^Théo", "Rousseau^Léa"),
        ),
    ),
    "korean": (
        Institution(
            "hanbit",
            "서울한빛병원",
            "서울특별시 강남구 테헤란로 152",
            "영상의학과",
            "HANB",
            ("Lee^Sora=李^素羅=이^소라", "Choi^Minho=崔^民浩=최^민호"),
            ("Jung^Hyun=鄭^賢=정^현",),
            ("Kang^Yuna=姜^侑娜=강^유나",),
        ),
    ),
}
