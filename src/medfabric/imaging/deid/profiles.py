"""Named de-identification profiles: the Basic Profile of PS3.15 Annex E plus options and per-tag overrides.

A profile is a frozen value that says *what* to do; it never touches a dataset and never holds a secret.
Custom profiles extend a base profile from a mapping or a TOML file (base + options + overrides).
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from pydicom.datadict import tag_for_keyword

from medfabric.errors import InvalidInput, NotFound
from medfabric.imaging.deid.table import load_table, parse_tag


class Option(StrEnum):
    """The options of PS3.15 E.3, named after their column in Table E.1-1."""

    RETAIN_SAFE_PRIVATE = "retain_safe_private"
    RETAIN_UIDS = "retain_uids"
    RETAIN_DEVICE_IDENTITY = "retain_device_identity"
    RETAIN_INSTITUTION_IDENTITY = "retain_institution_identity"
    RETAIN_PATIENT_CHARACTERISTICS = "retain_patient_characteristics"
    RETAIN_LONGITUDINAL_FULL_DATES = "retain_longitudinal_full_dates"
    RETAIN_LONGITUDINAL_MODIFIED_DATES = "retain_longitudinal_modified_dates"
    CLEAN_DESCRIPTORS = "clean_descriptors"
    CLEAN_STRUCTURED_CONTENT = "clean_structured_content"
    CLEAN_GRAPHICS = "clean_graphics"


#: (code value, code meaning) of each option in CID 7050 (De-identification Method), scheme DCM.
BASIC_PROFILE_CODE = ("113100", "Basic Application Confidentiality Profile")
OPTION_CODES_CID7050: Mapping[Option, tuple[str, str]] = {
    Option.CLEAN_GRAPHICS: ("113103", "Clean Graphics Option"),
    Option.CLEAN_STRUCTURED_CONTENT: ("113104", "Clean Structured Content Option"),
    Option.CLEAN_DESCRIPTORS: ("113105", "Clean Descriptors Option"),
    Option.RETAIN_LONGITUDINAL_FULL_DATES: (
        "113106",
        "Retain Longitudinal Temporal Information Full Dates Option",
    ),
    Option.RETAIN_LONGITUDINAL_MODIFIED_DATES: (
        "113107",
        "Retain Longitudinal Temporal Information Modified Dates Option",
    ),
    Option.RETAIN_PATIENT_CHARACTERISTICS: ("113108", "Retain Patient Characteristics Option"),
    Option.RETAIN_DEVICE_IDENTITY: ("113109", "Retain Device Identity Option"),
    Option.RETAIN_UIDS: ("113110", "Retain UIDs Option"),
    Option.RETAIN_SAFE_PRIVATE: ("113111", "Retain Safe Private Option"),
    Option.RETAIN_INSTITUTION_IDENTITY: ("113112", "Retain Institution Identity Option"),
}
#: Options this engine does not carry out; a profile that names one is refused rather than half-honoured.
UNSUPPORTED_OPTIONS = frozenset({Option.CLEAN_STRUCTURED_CONTENT, Option.CLEAN_GRAPHICS})
#: Actions a per-tag override may give: X, Z, D, U, K as in the table, C to clean by VR.
OVERRIDE_ACTIONS = frozenset({"X", "Z", "D", "U", "K", "C"})


@dataclass(frozen=True, order=True)
class SafePrivateAttribute:
    """A private attribute (gggg,xxEE) kept by Retain Safe Private: its block's creator, group and EE byte."""

    creator: str
    group: int
    element: int

    @property
    def key(self) -> tuple[str, int, int]:
        return (self.creator.strip().upper(), self.group, self.element & 0xFF)


@dataclass(frozen=True)
class Profile:
    """A de-identification profile: the Basic Profile, the options it enables and per-tag overrides.

    `overrides` maps a tag to an action that replaces whatever the table and options give (X, Z, D, U, K,
    C). `safe_private` adds to the standard safe list used by Retain Safe Private. Instances of a SOP class
    in the quarantine list, or flagged BurnedInAnnotation YES, are not output when `quarantine` is true.
    Modified dates move by a whole number of days in [-max_date_shift_days, -1], fixed per patient.
    With `scrub_residual`, the instance's own identifying values (names, IDs, institution, addresses) are
    also removed from every text attribute the table keeps (free text the table does not list, such as
    Code Meaning, is where identity leaks in practice).
    """

    name: str
    options: frozenset[Option] = frozenset()
    overrides: tuple[tuple[int, str], ...] = ()
    safe_private: tuple[SafePrivateAttribute, ...] = ()
    quarantine: bool = True
    scrub_residual: bool = True
    max_date_shift_days: int = 3650
    uid_root: str = "2.25"
    base: str | None = None
    description: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        unsupported = self.options & UNSUPPORTED_OPTIONS
        if unsupported:
            raise InvalidInput(f"profile {self.name!r}: option(s) not implemented: {sorted(unsupported)}")
        dates = {Option.RETAIN_LONGITUDINAL_FULL_DATES, Option.RETAIN_LONGITUDINAL_MODIFIED_DATES}
        if dates <= self.options:
            raise InvalidInput(f"profile {self.name!r}: full dates and modified dates exclude each other")
        for tag, action in self.overrides:
            if action not in OVERRIDE_ACTIONS:
                raise InvalidInput(f"profile {self.name!r}: unknown action {action!r} for tag {tag:08X}")
        if not 1 <= self.max_date_shift_days <= 36500:
            raise InvalidInput(f"profile {self.name!r}: max_date_shift_days must be in 1..36500")
        if self.uid_root != "2.25":
            raise InvalidInput(f"profile {self.name!r}: only the 2.25 (UUID-derived) UID root is supported")

    @property
    def override_map(self) -> dict[int, str]:
        return dict(self.overrides)

    def extend(
        self,
        name: str,
        *,
        options: Iterable[Option | str] = (),
        overrides: Mapping[int | str, str] | None = None,
        safe_private: Iterable[SafePrivateAttribute] = (),
        **changes: Any,
    ) -> Profile:
        """A new profile on top of this one: options are added, overrides and safe list merged (new wins)."""
        merged = self.override_map
        for key, action in (overrides or {}).items():
            merged[resolve_tag(key)] = str(action).upper()
        return replace(
            self,
            name=name,
            base=self.name,
            options=self.options | {_option(o) for o in options},
            overrides=tuple(sorted(merged.items())),
            safe_private=tuple(sorted(set(self.safe_private) | set(safe_private))),
            **changes,
        )


def resolve_tag(key: int | str) -> int:
    """A tag from an int, a DICOM keyword or ``(gggg,eeee)`` text."""
    if isinstance(key, int):
        return key
    tag = tag_for_keyword(key)
    if tag is not None:
        return int(tag)
    row = load_table().by_keyword.get(key)
    if row is not None:
        return row.tag
    return parse_tag(key)


def _option(value: Option | str) -> Option:
    try:
        return Option(value)
    except ValueError:
        raise InvalidInput(f"unknown de-identification option {value!r}") from None


BASIC = Profile(
    name="basic", description="PS3.15 Basic Application Level Confidentiality Profile, no options"
)
LONGITUDINAL = BASIC.extend(
    "longitudinal",
    options=[Option.RETAIN_LONGITUDINAL_MODIFIED_DATES],
    description="Basic Profile with dates shifted per patient",
)
RESEARCH = BASIC.extend(
    "research",
    options=[
        Option.RETAIN_LONGITUDINAL_MODIFIED_DATES,
        Option.RETAIN_PATIENT_CHARACTERISTICS,
        Option.RETAIN_DEVICE_IDENTITY,
        Option.RETAIN_SAFE_PRIVATE,
        Option.CLEAN_DESCRIPTORS,
    ],
    description="Basic Profile keeping shifted dates, patient characteristics, device identity, "
    "safe private attributes and cleaned descriptions",
)
BUILTIN_PROFILES: Mapping[str, Profile] = {p.name: p for p in (BASIC, LONGITUDINAL, RESEARCH)}


def get_profile(name: str) -> Profile:
    """A built-in profile by name (NotFound otherwise)."""
    try:
        return BUILTIN_PROFILES[name]
    except KeyError:
        raise NotFound(f"no de-identification profile {name!r}; known: {sorted(BUILTIN_PROFILES)}") from None


def profile_from_spec(spec: Mapping[str, Any], *, known: Mapping[str, Profile] = BUILTIN_PROFILES) -> Profile:
    """A profile from a mapping (the shape of a TOML profile file).

    Keys: ``name`` (required), ``base`` (a known profile, default "basic"), ``options`` (list of option
    names), ``overrides`` (keyword or "(gggg,eeee)" → action), ``safe_private`` (list of {creator, group,
    element}), ``quarantine``, ``scrub_residual``, ``max_date_shift_days``, ``description``.
    """
    allowed = {
        "name",
        "base",
        "options",
        "overrides",
        "safe_private",
        "quarantine",
        "scrub_residual",
        "max_date_shift_days",
        "description",
    }
    unknown = set(spec) - allowed
    if unknown:
        raise InvalidInput(f"unknown profile key(s): {sorted(unknown)}")
    if not isinstance(spec.get("name"), str) or not spec["name"]:
        raise InvalidInput("a profile needs a name")
    base_name = str(spec.get("base", "basic"))
    base = known.get(base_name)
    if base is None:
        raise InvalidInput(f"unknown base profile {base_name!r}")
    changes: dict[str, Any] = {}
    settings = (
        ("quarantine", bool),
        ("scrub_residual", bool),
        ("max_date_shift_days", int),
        ("description", str),
    )
    for key, kind in settings:
        if key in spec:
            if not isinstance(spec[key], kind):
                raise InvalidInput(f"profile key {key!r} must be a {kind.__name__}")
            changes[key] = spec[key]
    overrides = spec.get("overrides", {})
    if not isinstance(overrides, Mapping):
        raise InvalidInput("profile overrides must be a table of keyword = action")
    return base.extend(
        str(spec["name"]),
        options=[str(o) for o in spec.get("options", [])],
        overrides={str(k): str(v) for k, v in overrides.items()},
        safe_private=[_safe_private_entry(e) for e in spec.get("safe_private", [])],
        **changes,
    )


def load_profile(path: Path, *, known: Mapping[str, Profile] = BUILTIN_PROFILES) -> Profile:
    """A profile from a TOML file (see `profile_from_spec` for its keys)."""
    try:
        spec = tomllib.loads(path.read_text("utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise InvalidInput(f"cannot read profile {path}: {error}") from error
    return profile_from_spec(spec, known=known)


def _safe_private_entry(entry: Mapping[str, Any]) -> SafePrivateAttribute:
    try:
        group, element = entry["group"], entry["element"]
        return SafePrivateAttribute(
            creator=str(entry["creator"]),
            group=group if isinstance(group, int) else int(str(group), 16),
            element=element if isinstance(element, int) else int(str(element), 16),
        )
    except (KeyError, TypeError, ValueError) as error:
        raise InvalidInput(f"bad safe private entry {dict(entry)!r}: {error}") from error


def _data(name: str) -> dict[str, Any]:
    text = resources.files(__package__).joinpath("data").joinpath(name).read_text("utf-8")
    document: dict[str, Any] = json.loads(text)
    return document


@cache
def standard_safe_private() -> frozenset[SafePrivateAttribute]:
    """The safe private attributes shipped as data (a subset of PS3.15 Table E.3.10-1)."""
    return frozenset(_safe_private_entry(e) for e in _data("safe_private_attributes.json")["attributes"])


@cache
def quarantine_sop_classes() -> tuple[Mapping[str, str], tuple[tuple[str, str], ...]]:
    """(SOP Class UID → reason, (UID prefix, reason) pairs) of instances that are quarantined."""
    document = _data("quarantine_sop_classes.json")
    return dict(document["sop_classes"]), tuple(document["sop_class_prefixes"].items())
