"""Who is asking, and the one place that decides what they may do.

The principal travels with every request. Data access needs the volume's gate (its ACL's data
codes, or its readAce/writeAce) AND the entry's file/directory ACE for the operation, or its
mode bits where no ACE is set (``security.ace.decide_access``). A volume ACL's ``r``/``w``/``fc``
are role grants on the whole volume: they open the gate and stand in for the entry-level check.
Management operations need an ACL code on the fabric (cluster) or on the volume. Checks decide;
they never change anything.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache

from medfabric.errors import InvalidInput, PermissionDenied
from medfabric.fs.model import Entry, Volume
from medfabric.security.ace import AccessOp, Ace, FileAces, decide_access, format_ace, parse_ace
from medfabric.security.acl import Acl, AclType, PrincipalType

# The ops a directory or file check names (re-exported for callers).
READ, WRITE, EXECUTE = AccessOp.READ, AccessOp.WRITE, AccessOp.EXECUTE
READDIR, ADDCHILD, DELETECHILD, LOOKUPDIR = (
    AccessOp.READDIR,
    AccessOp.ADDCHILD,
    AccessOp.DELETECHILD,
    AccessOp.LOOKUPDIR,
)
_WRITE_OPS = frozenset({AccessOp.WRITE, AccessOp.ADDCHILD, AccessOp.DELETECHILD})


@dataclass(frozen=True)
class Principal:
    name: str
    groups: frozenset[str] = field(default_factory=frozenset)
    roles: frozenset[str] = field(default_factory=frozenset)
    admin: bool = False  # holds fc on the fabric's ACL


# -- stored forms ------------------------------------------------------------------------------


def acl_to_text(acl: Acl) -> str:
    return json.dumps(
        {"user": acl.spec(PrincipalType.USER), "group": acl.spec(PrincipalType.GROUP)}, sort_keys=True
    )


@lru_cache(maxsize=1024)
def acl_from_text(acl_type: str, text: str) -> Acl:
    if not text:
        return Acl.empty(acl_type)
    stored = json.loads(text)
    return Acl.parse(acl_type, user=stored.get("user") or None, group=stored.get("group") or None)


def volume_acl(volume: Volume) -> Acl:
    return acl_from_text(AclType.VOLUME, volume.acl)


@lru_cache(maxsize=4096)
def _parsed_ace(text: str) -> Ace:
    return parse_ace(text)


def volume_ace(volume: Volume, kind: str) -> Ace:
    """The volume's readAce or writeAce; unset means its creator only (secure by default)."""
    text = volume.read_ace if kind == "read" else volume.write_ace
    return _parsed_ace(text if text is not None else f"u:{volume.owner}")


@lru_cache(maxsize=4096)
def file_aces_from_text(text: str | None) -> FileAces | None:
    if not text:
        return None
    return FileAces.parse(**json.loads(text))


def file_aces_to_text(aces: FileAces | None) -> str | None:
    if aces is None or aces.is_empty():
        return None
    return json.dumps(aces.texts(), sort_keys=True)


def canonical_ace(text: str) -> str:
    return format_ace(parse_ace(text))


# -- decisions -----------------------------------------------------------------------------------


def _data_grant(principal: Principal, volume: Volume, op: AccessOp) -> bool:
    """The volume ACL's data codes: r reads, w writes, fc does both."""
    acl = volume_acl(volume)
    if op in _WRITE_OPS:
        return acl.permits(principal, "w")
    return acl.permits(principal, "r") or acl.permits(principal, "w")


def volume_read_access(principal: Principal, volume: Volume) -> str:
    """How ``principal`` may read ``volume``'s data as a whole: "all" (an administrator, or the volume
    ACL grants r or w), "per-file" (the volume's readAce admits them: each file's ACE or mode then
    decides), or "none"."""
    if principal.admin or _data_grant(principal, volume, READ):
        return "all"
    return "per-file" if volume_ace(volume, "read").evaluate(principal) else "none"


def decide(principal: Principal, volume: Volume, entry: Entry, op: AccessOp) -> tuple[bool, str]:
    if principal.admin:
        return True, "fabric administrator"
    if _data_grant(principal, volume, op):
        return True, f"volume {volume.name} ACL grants {op.value}"
    kind = "write" if op in _WRITE_OPS else "read"
    decision = decide_access(
        principal,
        op,
        volume_ace=volume_ace(volume, kind),
        file_aces=file_aces_from_text(entry.aces),
        mode=entry.mode,
        owner=entry.owner,
        group=entry.grp,
    )
    return decision.allowed, decision.reason


def require(principal: Principal, volume: Volume, entry: Entry, op: AccessOp, path: str) -> None:
    allowed, reason = decide(principal, volume, entry, op)
    if not allowed:
        raise PermissionDenied(f"{principal.name} may not {op.value} {path}: {reason}")


def require_traverse(principal: Principal, volume: Volume, chain: list[Entry], path: str) -> None:
    """Every directory on the way to the target must allow lookup."""
    for entry in chain[:-1]:
        require(principal, volume, entry, AccessOp.LOOKUPDIR, path)


def require_cluster(principal: Principal, cluster_acl: Acl, code: str, action: str) -> None:
    if principal.admin or cluster_acl.permits(principal, code):
        return
    raise PermissionDenied(f"{principal.name} may not {action}: it needs '{code}' on the fabric's ACL")


def require_volume(principal: Principal, volume: Volume, code: str, action: str) -> None:
    if principal.admin or volume_acl(volume).permits(principal, code):
        return
    raise PermissionDenied(
        f"{principal.name} may not {action} on volume {volume.name}: it needs '{code}' on the volume's ACL"
    )


def require_admin(principal: Principal, action: str) -> None:
    if not principal.admin:
        raise PermissionDenied(f"{principal.name} may not {action}: only the fabric's administrators may")


def check_ace_text(text: str, what: str) -> str:
    try:
        return canonical_ace(text)
    except InvalidInput as error:
        raise InvalidInput(f"{what}: {error.message}") from error


def inherited_aces(parent: Entry, *, is_directory: bool) -> str | None:
    """What a new child takes from its directory: every ACE for a directory, the file ACEs for a file."""
    aces = file_aces_from_text(parent.aces)
    if aces is None:
        return None
    return file_aces_to_text(aces.for_new_child(is_directory=is_directory))
