"""MapR-style ACLs on the cluster (fabric) and on volumes: codes, parsing, edit/set/revoke, show.

An ``Acl`` is an immutable value; this module answers "does this principal hold this code" and never
stores, looks up or changes an ACL by itself. Unknown codes are refused, never ignored.

Codes (from MapR's ``acl`` reference): cluster ``login ss cv cp a fc`` (log in and read, start/stop
services, create volumes, create security policies, administer ACLs, full control); volume ``dump
restore m d a fc`` (dump, restore/mirror, modify and snapshot, delete, administer ACLs, full control)
plus medfabric's data shorthands ``r`` (read data) and ``w`` (write data). MapR's documentation is
inconsistent about whether ``fc`` includes changing the ACL; medfabric decides it does: ``fc``
implies every code, ``a`` implies only the right to change the ACL.

Entry syntax, as ``maprcli acl edit -user`` takes it: ``name:code[,code…]`` entries separated by
spaces (MapR) or commas (the seed's ``radiologist:fc,data_scientist:r``): after a comma, a token with
a ``:`` starts a new entry, one without adds a code to the current one. ACE-style prefixes
(``u:name:codes``) are refused with a hint: users go in ``-user``, groups in ``-group``.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Protocol

from medfabric.errors import InvalidInput
from medfabric.security.ace import is_valid_name


class AclType(enum.StrEnum):
    CLUSTER = "cluster"
    VOLUME = "volume"


class PrincipalType(enum.StrEnum):
    USER = "user"
    GROUP = "group"


# Canonical order: as MapR lists them in ``acl show``.
CODES: Mapping[AclType, tuple[str, ...]] = {
    AclType.CLUSTER: ("login", "ss", "cv", "cp", "a", "fc"),
    AclType.VOLUME: ("dump", "restore", "m", "d", "a", "fc", "r", "w"),
}
FULL_CONTROL = "fc"
ADMIN = "a"


class AclPrincipal(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def groups(self) -> AbstractSet[str]: ...


@dataclass(frozen=True, slots=True)
class AclEntry:
    principal_type: PrincipalType
    name: str
    codes: frozenset[str]

    @property
    def label(self) -> str:
        """``User root`` / ``Group radiology``, as ``acl show`` prints the principal."""
        return f"{self.principal_type.value.capitalize()} {self.name}"


def _ordered(acl_type: AclType, codes: Iterable[str]) -> tuple[str, ...]:
    present = set(codes)
    return tuple(code for code in CODES[acl_type] if code in present)


def check_code(acl_type: AclType, code: str) -> str:
    if code not in CODES[acl_type]:
        raise InvalidInput(
            f"unknown {acl_type.value} ACL code {code!r}; expected one of {', '.join(CODES[acl_type])}"
        )
    return code


_SPLIT = re.compile(r"[\s,]+")


def parse_entries(acl_type: AclType, spec: str) -> dict[str, frozenset[str]]:
    """``"radiologist:fc,data_scientist:r"`` → ``{"radiologist": {"fc"}, "data_scientist": {"r"}}``."""
    entries: dict[str, set[str]] = {}
    current: str | None = None
    for token in _SPLIT.split(spec.strip()):
        if not token:
            continue
        if ":" in token:
            name, _, code = token.partition(":")
            if ":" in code or (name in ("u", "g") and not code):
                raise InvalidInput(
                    f"ACL entry {token!r}: write name:codes (users with -user, groups with -group; "
                    "the u:/g: prefixes belong to ACEs)"
                )
            if not is_valid_name(name):
                raise InvalidInput(f"ACL entry {token!r}: invalid principal name {name!r}")
            if not code:
                raise InvalidInput(f"ACL entry {token!r}: no permission code after ':'")
            current = name
            entries.setdefault(name, set()).add(check_code(acl_type, code))
        elif current is None:
            raise InvalidInput(f"ACL entry {token!r}: expected name:code")
        else:
            entries[current].add(check_code(acl_type, token))
    if not entries:
        raise InvalidInput("empty ACL entry list; expected name:code[,code…]")
    return {name: frozenset(codes) for name, codes in entries.items()}


def _spec_entries(
    acl_type: AclType, user: str | None, group: str | None
) -> list[tuple[PrincipalType, str, frozenset[str]]]:
    if user is None and group is None:
        raise InvalidInput("give -user or -group (or both)")
    found: list[tuple[PrincipalType, str, frozenset[str]]] = []
    for principal_type, spec in ((PrincipalType.USER, user), (PrincipalType.GROUP, group)):
        if spec is not None:
            found += [(principal_type, n, c) for n, c in parse_entries(acl_type, spec).items()]
    return found


@dataclass(frozen=True, slots=True)
class Acl:
    """One object's ACL. Entries are canonical: users then groups, each sorted by name, no empty codes."""

    acl_type: AclType
    entries: tuple[AclEntry, ...] = ()

    def __post_init__(self) -> None:
        seen: set[tuple[PrincipalType, str]] = set()
        for entry in self.entries:
            if not is_valid_name(entry.name):
                raise InvalidInput(f"invalid principal name in ACL: {entry.name!r}")
            for code in entry.codes:
                check_code(self.acl_type, code)
            if (entry.principal_type, entry.name) in seen:
                raise InvalidInput(f"duplicate ACL entry for {entry.label}")
            seen.add((entry.principal_type, entry.name))
        users_first = sorted(
            (e for e in self.entries if e.codes),
            key=lambda e: (e.principal_type is not PrincipalType.USER, e.name),
        )
        canonical = tuple(users_first)
        object.__setattr__(self, "entries", canonical)

    # -- construction ---------------------------------------------------------------------------

    @classmethod
    def empty(cls, acl_type: AclType | str) -> Acl:
        return cls(_acl_type(acl_type))

    @classmethod
    def parse(cls, acl_type: AclType | str, *, user: str | None = None, group: str | None = None) -> Acl:
        kind = _acl_type(acl_type)
        found = _spec_entries(kind, user, group)
        return cls(kind, tuple(AclEntry(t, n, c) for t, n, c in found))

    def edit(self, *, user: str | None = None, group: str | None = None) -> Acl:
        """``acl edit``: add the given codes to the named principals; everyone else is untouched."""
        merged = {(e.principal_type, e.name): set(e.codes) for e in self.entries}
        for principal_type, name, codes in _spec_entries(self.acl_type, user, group):
            merged.setdefault((principal_type, name), set()).update(codes)
        return self._with(merged)

    def set(self, *, user: str | None = None, group: str | None = None) -> Acl:
        """``acl set``: the result is exactly the given entries; everything omitted is removed."""
        return Acl.parse(self.acl_type, user=user, group=group)

    def revoke(self, *, user: str | None = None, group: str | None = None) -> Acl:
        """Remove the given codes from the named principals (an entry left with no code disappears)."""
        remaining = {(e.principal_type, e.name): set(e.codes) for e in self.entries}
        for principal_type, name, codes in _spec_entries(self.acl_type, user, group):
            remaining.get((principal_type, name), set()).difference_update(codes)
        return self._with(remaining)

    def _with(self, codes_by_principal: Mapping[tuple[PrincipalType, str], AbstractSet[str]]) -> Acl:
        entries = tuple(AclEntry(t, n, frozenset(c)) for (t, n), c in codes_by_principal.items())
        return Acl(self.acl_type, entries)

    # -- questions ------------------------------------------------------------------------------

    def codes_for(self, principal: AclPrincipal) -> frozenset[str]:
        """Every code the principal holds, directly or through a group, with ``fc`` expanded."""
        held: set[str] = set()
        for entry in self.entries:
            if (entry.principal_type is PrincipalType.USER and entry.name == principal.name) or (
                entry.principal_type is PrincipalType.GROUP and entry.name in principal.groups
            ):
                held |= entry.codes
        if FULL_CONTROL in held:
            held.update(CODES[self.acl_type])
        return frozenset(held)

    def permits(self, principal: AclPrincipal, code: str) -> bool:
        return check_code(self.acl_type, code) in self.codes_for(principal)

    def can_change_acl(self, principal: AclPrincipal) -> bool:
        return self.permits(principal, ADMIN)

    # -- output ---------------------------------------------------------------------------------

    def spec(self, principal_type: PrincipalType) -> str:
        """The entries of one kind as ``-user``/``-group`` text (``"root:a,fc bob:r"``); re-parses equal."""
        return " ".join(
            f"{e.name}:{','.join(_ordered(self.acl_type, e.codes))}"
            for e in self.entries
            if e.principal_type is principal_type
        )

    def rows(self) -> list[tuple[str, tuple[str, ...]]]:
        """``[("User root", ("login", "ss", …)), …]`` for ``acl show -json``."""
        return [(e.label, _ordered(self.acl_type, e.codes)) for e in self.entries]

    def format(self) -> str:
        """``acl show`` text: a ``Principal``/``Allowed actions`` table, as MapR prints it."""
        rows = [(label, f"[{', '.join(codes)}]") for label, codes in self.rows()]
        width = max([len("Principal"), *(len(label) for label, _ in rows)]) + 2
        lines = [f"{'Principal':<{width}}Allowed actions"]
        lines += [f"{label:<{width}}{codes}" for label, codes in rows]
        return "\n".join(lines)


def _acl_type(value: AclType | str) -> AclType:
    try:
        return AclType(value)
    except ValueError:
        raise InvalidInput(f"unknown ACL type {value!r}; expected cluster or volume") from None
