"""DICOM PS3.15 Table E.1-1 (Application Level Confidentiality Profile Attributes), loaded from package data.

This module only reads the table shipped as JSON and answers questions about it; it never applies an
action to a dataset and never changes the table (profiles layer their options and overrides on top).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

from medfabric.errors import InvalidInput

TABLE_RESOURCE = "ps3_15_table_e1_1.json"

#: The action codes Table E.1-1 uses in its Basic Profile column.
BASIC_CODES = frozenset({"D", "Z", "X", "K", "C", "U", "Z/D", "X/Z", "X/D", "X/Z/D", "X/Z/U*"})
#: The action codes an option column (or a profile override) may give.
OPTION_CODES = frozenset({"K", "C"})
OPTION_COLUMNS = (
    "retain_safe_private",
    "retain_uids",
    "retain_device_identity",
    "retain_institution_identity",
    "retain_patient_characteristics",
    "retain_longitudinal_full_dates",
    "retain_longitudinal_modified_dates",
    "clean_descriptors",
    "clean_structured_content",
    "clean_graphics",
)


@dataclass(frozen=True)
class TableRow:
    """One row of Table E.1-1: an attribute (or a group mask, or the private-attribute rule) and its actions.

    `tag` is the plain tag for an ordinary row. Rows for repeating groups carry `group_mask`: the row then
    applies to every even group g with ``g & 0xFF00 == tag >> 16 & 0xFF00`` and, unless `any_element`, to the
    element ``tag & 0xFFFF`` only. The private rule has `is_private` set and `tag` 0.
    """

    tag: int
    keyword: str
    name: str
    basic: str
    options: tuple[tuple[str, str], ...] = ()
    retired: bool = False
    group_mask: bool = False
    any_element: bool = False
    is_private: bool = False

    def option_action(self, option: str) -> str | None:
        for name, action in self.options:
            if name == option:
                return action
        return None


@dataclass(frozen=True)
class ConfidentialityTable:
    """The whole table: its edition, provenance and rows (ordinary rows by tag, masks and private apart)."""

    edition: str
    sources: tuple[str, ...]
    masked_rows: tuple[TableRow, ...]
    private_row: TableRow
    rows: Mapping[int, TableRow] = field(repr=False, compare=False, hash=False)
    by_keyword: Mapping[str, TableRow] = field(repr=False, compare=False, hash=False)


def parse_tag(text: str) -> int:
    """A tag from ``(gggg,eeee)``, ``gggg,eeee`` or ``ggggeeee`` text; InvalidInput otherwise."""
    cleaned = text.strip().strip("()").replace(",", "").replace(" ", "")
    if len(cleaned) != 8:
        raise InvalidInput(f"not a DICOM tag: {text!r}")
    try:
        return int(cleaned, 16)
    except ValueError:
        raise InvalidInput(f"not a DICOM tag: {text!r}") from None


def _row_from_json(entry: dict[str, Any]) -> TableRow:
    basic = str(entry["basic"])
    if basic not in BASIC_CODES:
        raise ValueError(f"unknown Basic Profile code {basic!r} in {entry}")
    options = tuple((name, str(entry[name])) for name in OPTION_COLUMNS if name in entry)
    for name, action in options:
        if action not in OPTION_CODES:
            raise ValueError(f"unknown option code {action!r} for {name} in {entry}")
    text = str(entry["tag"])
    tag, group_mask, any_element, is_private = 0, False, False, False
    if text == "PRIVATE":
        is_private = True
    elif "XX" in text.upper():
        group_text, element_text = text.strip("()").upper().split(",")
        group_mask, any_element = True, element_text == "XXXX"
        element = 0 if any_element else int(element_text, 16)
        tag = (int(group_text.replace("XX", "00"), 16) << 16) | element
    else:
        tag = parse_tag(text)
    return TableRow(
        tag=tag,
        keyword=str(entry.get("keyword", "")),
        name=str(entry["name"]),
        basic=basic,
        options=options,
        retired=bool(entry.get("retired", False)),
        group_mask=group_mask,
        any_element=any_element,
        is_private=is_private,
    )


@cache
def load_table() -> ConfidentialityTable:
    """The table shipped with medfabric (parsed once per process)."""
    document = json.loads(
        resources.files(__package__).joinpath("data").joinpath(TABLE_RESOURCE).read_text("utf-8")
    )
    rows: dict[int, TableRow] = {}
    masked: list[TableRow] = []
    private_row: TableRow | None = None
    for entry in document["attributes"]:
        row = _row_from_json(entry)
        if row.is_private:
            private_row = row
        elif row.group_mask:
            masked.append(row)
        else:
            rows[row.tag] = row
    if private_row is None:
        raise ValueError("Table E.1-1 data lacks the private-attribute rule")
    return ConfidentialityTable(
        edition=str(document["edition"]),
        sources=tuple(str(s) for s in document["sources"]),
        masked_rows=tuple(masked),
        private_row=private_row,
        rows=rows,
        by_keyword={row.keyword: row for row in rows.values() if row.keyword},
    )
