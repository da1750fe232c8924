"""Who is asking, and the permission checks every service operation makes before it acts.

The principal travels with every request. Checks here decide; they never change anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from medfabric.errors import PermissionDenied
from medfabric.fs.model import Entry

READ = 4
WRITE = 2
EXECUTE = 1


@dataclass(frozen=True)
class Principal:
    name: str
    groups: frozenset[str] = field(default_factory=frozenset)
    roles: frozenset[str] = field(default_factory=frozenset)
    admin: bool = False


def mode_allows(principal: Principal, entry: Entry, want: int) -> bool:
    """POSIX permission bits: the owner's class, else the group's, else other's."""
    if principal.admin:
        return True
    if principal.name == entry.owner:
        granted = (entry.mode >> 6) & 7
    elif entry.grp in principal.groups:
        granted = (entry.mode >> 3) & 7
    else:
        granted = entry.mode & 7
    return granted & want == want


def require_mode(principal: Principal, entry: Entry, want: int, path: str) -> None:
    if not mode_allows(principal, entry, want):
        needed = "".join(
            letter for bit, letter in ((READ, "read"), (WRITE, "write"), (EXECUTE, "search")) if want & bit
        )
        raise PermissionDenied(f"{principal.name} may not {needed} {path}")


def require_traverse(principal: Principal, chain: list[Entry], path: str) -> None:
    """Every directory on the way to the target must be searchable (x)."""
    if principal.admin:
        return
    for entry in chain[:-1]:
        require_mode(principal, entry, EXECUTE, path)


def require_admin(principal: Principal, action: str) -> None:
    if not principal.admin:
        raise PermissionDenied(f"{principal.name} may not {action}: only the fabric's administrators may")
