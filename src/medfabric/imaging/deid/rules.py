"""Compiles a Profile into the per-tag action table the engine and the verifier consult.

Resolution happens once per profile (cached), so the engine's hot loop is one dict lookup per element.
This module decides actions; it never reads or changes a dataset.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache

from medfabric.imaging.deid.profiles import Option, Profile, standard_safe_private
from medfabric.imaging.deid.table import TableRow, load_table

PATIENT_ID = 0x00100020
PATIENT_NAME = 0x00100010

#: What the engine does with a non-sequence element for each effective code. A compound code becomes its
#: most conformant choice: D keeps type 1 attributes valid, Z keeps type 2 ones present, and nothing of the
#: original value survives either way.
VALUE_ACTION = {
    "X": "X",
    "Z": "Z",
    "D": "D",
    "U": "U",
    "K": "K",
    "C": "C",
    "Z/D": "D",
    "X/Z": "Z",
    "X/D": "D",
    "X/Z/D": "D",
    "X/Z/U*": "U",
}
#: The same for sequences: D and X/Z/U* keep the sequence and apply the table inside its items (that is
#: what keeps references such as Referenced Image Sequence resolvable); Z empties it; X/Z removes it, as an
#: empty Type 3 sequence is itself invalid, unless it is one that is Type 2 where used (below).
SEQUENCE_ACTION = {
    "X": "X", "Z": "Z", "D": "K", "U": "X", "K": "K", "C": "C",
    "Z/D": "Z", "X/Z": "X", "X/D": "X", "X/Z/D": "X", "X/Z/U*": "K",
}  # fmt: skip
#: X/Z sequences that are Type 2 in the modules that use them (PS3.3), so Z (emptied) rather than X.
TYPE_2_SEQUENCES = frozenset({0x00400555})  # Acquisition Context Sequence
_TEMPORAL_COLUMNS = (Option.RETAIN_LONGITUDINAL_FULL_DATES, Option.RETAIN_LONGITUDINAL_MODIFIED_DATES)


@dataclass(frozen=True, eq=False)
class CompiledRules:
    """A profile resolved per tag.

    `codes` holds the effective table code (after options and overrides) of every ruled tag: the verifier
    checks against it. `actions` holds the engine's (value action, sequence action) pair per tag; PatientID
    and PatientName get the pseudonym actions "PID" and "PNAME" unless an override says otherwise.
    """

    profile: Profile
    codes: Mapping[int, str]
    actions: Mapping[int, tuple[str, str]]
    keep_safe_private: bool
    safe_private: frozenset[tuple[str, int, int]]
    cleans_text: bool
    shifts_dates: bool
    curve_code: str
    overlay_code: str


def effective_code(row: TableRow, options: frozenset[Option]) -> str:
    """The action a row gets under a set of options.

    Date and time rows follow the temporal options alone (a Retain Device Identity K does not keep a
    calibration date the profile would otherwise remove or shift). Otherwise C wins over K: when two
    enabled options disagree, the more protective one applies.
    """
    if row.option_action(Option.RETAIN_LONGITUDINAL_FULL_DATES) is not None:
        for option in _TEMPORAL_COLUMNS:
            if option in options:
                return row.option_action(option) or row.basic
        return row.basic
    chosen = {row.option_action(option) for option in options} - {None}
    if "C" in chosen:
        return "C"
    if "K" in chosen:
        return "K"
    return row.basic


@cache
def compile_profile(profile: Profile) -> CompiledRules:
    table = load_table()
    options = profile.options
    codes = {tag: effective_code(row, options) for tag, row in table.rows.items()}
    overrides = profile.override_map
    codes.update(overrides)
    actions = {tag: (VALUE_ACTION[code], SEQUENCE_ACTION[code]) for tag, code in codes.items()}
    for tag in TYPE_2_SEQUENCES:
        if codes.get(tag) == "X/Z":
            actions[tag] = (actions[tag][0], "Z")
    if PATIENT_ID not in overrides and actions[PATIENT_ID][0] != "K":
        actions[PATIENT_ID] = ("PID", "X")
    if PATIENT_NAME not in overrides and actions[PATIENT_NAME][0] != "K":
        actions[PATIENT_NAME] = ("PNAME", "X")
    curve_row, overlay_row = (next(r for r in table.masked_rows if r.tag >> 24 == g) for g in (0x50, 0x60))
    safe = {entry.key for entry in standard_safe_private() | set(profile.safe_private)}
    return CompiledRules(
        profile=profile,
        codes=codes,
        actions=actions,
        keep_safe_private=Option.RETAIN_SAFE_PRIVATE in options,
        safe_private=frozenset(safe),
        cleans_text=any(value == "C" for value, _ in actions.values()),
        shifts_dates=Option.RETAIN_LONGITUDINAL_MODIFIED_DATES in options,
        curve_code=effective_code(curve_row, options),
        overlay_code=effective_code(overlay_row, options),
    )
