"""Principals, ACLs and file ACEs, as the service manages them.

Users, groups and roles live in the catalog; passwords and API tokens are stored only as argon2
hashes. Changing principals needs the fabric's `a` (or `fc`) code; changing a volume's ACL needs
that volume's `a`; setting a file's ACEs needs to own it (or to administer the fabric).
"""

from __future__ import annotations

import builtins
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from medfabric.catalog.schema import groups, memberships, meta, tokens, users
from medfabric.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from medfabric.fs import volumes as volume_rows
from medfabric.fs.model import Entry
from medfabric.fs.namespace import list_children
from medfabric.security.ace import FileAces
from medfabric.security.acl import Acl
from medfabric.security.tokens import hash_password, issue_token, parse_token, verify_token
from medfabric.service.access import (
    acl_to_text,
    file_aces_from_text,
    file_aces_to_text,
    require_cluster,
    require_volume,
    volume_acl,
)
from medfabric.service.paths import entry_stat, locate, walk_checked

if TYPE_CHECKING:
    from medfabric.fs.model import FileStat
    from medfabric.service.fabric import Fabric

NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.@$+-]{0,254}$")


def check_principal_name(name: str, what: str = "user") -> str:
    if not NAME.match(name or ""):
        raise InvalidInput(f"invalid {what} name {name!r}: letters, digits and _ . @ $ + - (up to 255)")
    return name


@dataclass(frozen=True)
class UserInfo:
    name: str
    groups: tuple[str, ...]
    roles: tuple[str, ...]
    has_password: bool
    tokens: int

    def as_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "groups": list(self.groups),
            "roles": list(self.roles),
            "password": self.has_password,
            "tokens": self.tokens,
        }


class SecurityService:
    def __init__(self, fabric: Fabric) -> None:
        self.fabric = fabric

    def _require_security_admin(self, action: str) -> None:
        require_cluster(self.fabric.principal, self.fabric.cluster_acl(), "a", action)

    # -- users -----------------------------------------------------------------------------------

    def user_add(
        self,
        name: str,
        *,
        member_of: Sequence[str] = (),
        roles: Sequence[str] = (),
        password: str | None = None,
    ) -> UserInfo:
        fabric = self.fabric
        with fabric.access("user add") as note:
            note.detail = f"user {name}"
            self._require_security_admin("add users")
            check_principal_name(name)
            with fabric.catalog.write() as conn:
                if _user_exists(conn, name):
                    raise Conflict(f"user {name!r} already exists")
                conn.execute(
                    users.insert().values(
                        name=name,
                        password_hash=hash_password(password) if password is not None else None,
                        created_at=fabric.clock.now_ms(),
                        created_by=fabric.principal.name,
                    )
                )
                self._set_memberships(conn, name, "group", member_of)
                self._set_memberships(conn, name, "role", roles)
        return self.user_info(name)

    def user_modify(
        self, name: str, *, member_of: Sequence[str] | None = None, roles: Sequence[str] | None = None
    ) -> UserInfo:
        fabric = self.fabric
        with fabric.access("user modify") as note:
            note.detail = f"user {name}"
            self._require_security_admin("change users")
            with fabric.catalog.write() as conn:
                if not _user_exists(conn, name):
                    raise NotFound(f"unknown user {name!r}")
                if member_of is not None:
                    self._set_memberships(conn, name, "group", member_of)
                if roles is not None:
                    self._set_memberships(conn, name, "role", roles)
        return self.user_info(name)

    def _set_memberships(self, conn: Connection, user: str, kind: str, names: Sequence[str]) -> None:
        wanted = [check_principal_name(name, kind) for name in dict.fromkeys(n for n in names if n)]
        known = set(conn.execute(sa.select(groups.c.name).where(groups.c.kind == kind)).scalars())
        for name in wanted:
            if name not in known:
                conn.execute(
                    groups.insert().values(name=name, kind=kind, created_at=self.fabric.clock.now_ms())
                )
        conn.execute(memberships.delete().where(memberships.c.user_name == user, memberships.c.kind == kind))
        if wanted:
            conn.execute(
                memberships.insert(),
                [{"user_name": user, "kind": kind, "group_name": name} for name in wanted],
            )

    def user_remove(self, name: str) -> None:
        fabric = self.fabric
        with fabric.access("user remove") as note:
            note.detail = f"user {name}"
            self._require_security_admin("remove users")
            if name == fabric.principal.name:
                raise Conflict("you cannot remove yourself")
            with fabric.catalog.write() as conn:
                if not _user_exists(conn, name):
                    raise NotFound(f"unknown user {name!r}")
                conn.execute(memberships.delete().where(memberships.c.user_name == name))
                conn.execute(tokens.delete().where(tokens.c.user_name == name))
                conn.execute(users.delete().where(users.c.name == name))

    def user_info(self, name: str) -> UserInfo:
        with self.fabric.catalog.read() as conn:
            row = conn.execute(sa.select(users).where(users.c.name == name)).first()
            if row is None:
                raise NotFound(f"unknown user {name!r}")
            links = conn.execute(
                sa.select(memberships.c.kind, memberships.c.group_name)
                .where(memberships.c.user_name == name)
                .order_by(memberships.c.group_name)
            ).all()
            count = conn.execute(sa.select(sa.func.count()).where(tokens.c.user_name == name)).scalar_one()
        return UserInfo(
            name,
            tuple(g for k, g in links if k == "group"),
            tuple(g for k, g in links if k == "role"),
            row.password_hash is not None,
            int(count),
        )

    def user_list(self) -> builtins.list[UserInfo]:
        with self.fabric.access("user list"), self.fabric.catalog.read() as conn:
            names = conn.execute(sa.select(users.c.name).order_by(users.c.name)).scalars().all()
        return [self.user_info(str(name)) for name in names]

    def passwd(self, name: str, password: str) -> None:
        """Set a password: your own, or anyone's with the fabric's `a` code."""
        fabric = self.fabric
        with fabric.access("user passwd") as note:
            note.detail = f"user {name}"
            if name != fabric.principal.name:
                self._require_security_admin("set other users' passwords")
            with fabric.catalog.write() as conn:
                if not _user_exists(conn, name):
                    raise NotFound(f"unknown user {name!r}")
                conn.execute(
                    users.update().where(users.c.name == name).values(password_hash=hash_password(password))
                )

    def token_create(self, name: str, *, description: str = "", expires_at: int | None = None) -> str:
        """A new API token for ``name``; only its hash is kept, so this is the one chance to see it."""
        fabric = self.fabric
        with fabric.access("user token create") as note:
            note.detail = f"user {name}"
            if name != fabric.principal.name:
                self._require_security_admin("create tokens for other users")
            issued = issue_token()
            with fabric.catalog.write() as conn:
                if not _user_exists(conn, name):
                    raise NotFound(f"unknown user {name!r}")
                conn.execute(
                    tokens.insert().values(
                        token_id=issued.record.token_id,
                        user_name=name,
                        token_hash=issued.record.token_hash,
                        description=description,
                        created_at=fabric.clock.now_ms(),
                        expires_at=expires_at,
                    )
                )
            return issued.token

    def authenticate_token(self, token: str) -> str:
        """The user a token belongs to (PermissionDenied for a wrong, unknown or expired token)."""
        parsed = parse_token(token)
        with self.fabric.catalog.read() as conn:
            row = conn.execute(sa.select(tokens).where(tokens.c.token_id == parsed.token_id)).first()
        from medfabric.security.tokens import TokenRecord, burn_verification

        if row is None:
            burn_verification()
            raise PermissionDenied("invalid token")
        if not verify_token(token, TokenRecord(row.token_id, row.token_hash)):
            raise PermissionDenied("invalid token")
        if row.expires_at is not None and row.expires_at <= self.fabric.clock.now_ms():
            raise PermissionDenied("the token has expired")
        return str(row.user_name)

    # -- groups and roles --------------------------------------------------------------------------

    def group_add(self, name: str, *, kind: str = "group") -> None:
        fabric = self.fabric
        with fabric.access(f"{kind} add") as note:
            note.detail = f"{kind} {name}"
            self._require_security_admin(f"add {kind}s")
            check_principal_name(name, kind)
            with fabric.catalog.write() as conn:
                if conn.execute(
                    sa.select(groups.c.name).where(groups.c.name == name, groups.c.kind == kind)
                ).first():
                    raise Conflict(f"{kind} {name!r} already exists")
                conn.execute(groups.insert().values(name=name, kind=kind, created_at=fabric.clock.now_ms()))

    def group_remove(self, name: str, *, kind: str = "group") -> None:
        fabric = self.fabric
        with fabric.access(f"{kind} remove") as note:
            note.detail = f"{kind} {name}"
            self._require_security_admin(f"remove {kind}s")
            with fabric.catalog.write() as conn:
                removed = conn.execute(groups.delete().where(groups.c.name == name, groups.c.kind == kind))
                if removed.rowcount == 0:
                    raise NotFound(f"unknown {kind} {name!r}")
                conn.execute(
                    memberships.delete().where(memberships.c.kind == kind, memberships.c.group_name == name)
                )

    def group_list(self, *, kind: str = "group") -> builtins.list[dict[str, object]]:
        with self.fabric.access(f"{kind} list"), self.fabric.catalog.read() as conn:
            names = (
                conn.execute(sa.select(groups.c.name).where(groups.c.kind == kind).order_by(groups.c.name))
                .scalars()
                .all()
            )
            members = conn.execute(
                sa.select(memberships.c.group_name, memberships.c.user_name).where(memberships.c.kind == kind)
            ).all()
        return [
            {"name": name, "members": sorted(user for group, user in members if group == name)}
            for name in names
        ]

    def grant(self, user: str, name: str, *, kind: str = "role", granted: bool = True) -> UserInfo:
        info = self.user_info(user)
        current = builtins.list(info.roles if kind == "role" else info.groups)
        updated = sorted({*current, name}) if granted else [item for item in current if item != name]
        if kind == "role":
            return self.user_modify(user, roles=updated)
        return self.user_modify(user, member_of=updated)

    # -- ACLs ------------------------------------------------------------------------------------

    def acl_show(self, acl_type: str, volume: str | None = None) -> Acl:
        fabric = self.fabric
        with fabric.access("acl show", volume=volume):
            if acl_type == "cluster":
                return fabric.cluster_acl()
            if acl_type != "volume" or volume is None:
                raise InvalidInput("acl show takes -type cluster, or -type volume -name VOLUME")
            with fabric.catalog.read() as conn:
                return volume_acl(volume_rows.get_volume(conn, volume))

    def acl_change(
        self,
        acl_type: str,
        *,
        volume: str | None = None,
        user: str | None = None,
        group: str | None = None,
        replace: bool = False,
    ) -> Acl:
        """`acl edit` (add codes) or, with ``replace``, `acl set` (the list becomes exactly this)."""
        fabric = self.fabric
        if user is None and group is None:
            raise InvalidInput("give -user and/or -group, e.g. -user radiologist:fc,data_scientist:r")
        with fabric.access("acl set" if replace else "acl edit", volume=volume) as note:
            note.detail = f"user={user or ''} group={group or ''}"
            if acl_type == "cluster":
                current = fabric.cluster_acl()
                if not (fabric.principal.admin or current.can_change_acl(fabric.principal)):
                    raise PermissionDenied(f"{fabric.principal.name} may not change the fabric's ACL")
                updated = (
                    current.set(user=user, group=group) if replace else current.edit(user=user, group=group)
                )
                if not updated.permits(fabric.principal, "fc") and fabric.principal.admin and replace:
                    raise Conflict("that ACL would leave you without full control of the fabric")
                with fabric.catalog.write() as conn:
                    conn.execute(
                        meta.update().where(meta.c.key == "cluster_acl").values(value=acl_to_text(updated))
                    )
                return updated
            if acl_type != "volume" or volume is None:
                raise InvalidInput("acl edit/set take -type cluster, or -type volume -name VOLUME")
            with fabric.catalog.write() as conn:
                found = volume_rows.get_volume(conn, volume)
                require_volume(fabric.principal, found, "a", "change the ACL")
                current = volume_acl(found)
                updated = (
                    current.set(user=user, group=group) if replace else current.edit(user=user, group=group)
                )
                volume_rows.update_volume(
                    conn, found.id, acl=acl_to_text(updated), modified_at=fabric.clock.now_ms()
                )
                return updated

    # -- file and directory ACEs ------------------------------------------------------------------

    def getace(self, path: str) -> dict[str, str]:
        fabric = self.fabric
        with fabric.access("getace", path) as note, fabric.catalog.read() as conn:
            located = locate(conn, path)
            note.target(located.volume)
            entry = walk_checked(conn, located, fabric.principal)[-1]
            aces = file_aces_from_text(entry.aces)
            return aces.texts() if aces is not None else {}

    def setace(
        self,
        path: str,
        aces: Mapping[str, str] | None = None,
        *,
        recursive: bool = False,
        remove: bool = False,
    ) -> FileStat:
        """Set (merge) ACEs of the given kinds (``{"readfile": "g:radiology"}``), or remove all ACEs
        with ``remove``; ``recursive`` applies it to everything below a directory."""
        fabric = self.fabric
        update = FileAces.parse(**dict(aces or {}))
        with fabric.access("delace" if remove else "setace", path) as note, fabric.catalog.write() as conn:
            located = locate(conn, path)
            note.target(located.volume)
            note.detail = ",".join(f"{kind}={text}" for kind, text in update.texts().items())
            writer = fabric.fs._writer(conn, located)
            entry = walk_checked(conn, located, fabric.principal)[-1]
            targets: builtins.list[Entry] = [entry]
            if recursive and entry.is_dir:
                pending = [entry]
                while pending:
                    children = list_children(conn, writer.volume.id, pending.pop().ino)
                    targets.extend(children)
                    pending.extend(child for child in children if child.is_dir)
            changed = entry
            for target in targets:
                if not fabric.principal.admin and target.owner != fabric.principal.name:
                    raise PermissionDenied(
                        f"only the owner of {path} (or an administrator) may change its ACEs"
                    )
                current = file_aces_from_text(target.aces) or FileAces()
                if remove:
                    new_text = None
                else:
                    merged = current.merged(update)
                    if not target.is_dir:
                        merged = merged.for_new_child(is_directory=False)
                    new_text = file_aces_to_text(merged)
                updated = writer.update(target, aces=new_text)
                if target is entry:
                    changed = updated
            writer.finish()
            return entry_stat(located, changed)


def _user_exists(conn: Connection, name: str) -> bool:
    return conn.execute(sa.select(users.c.name).where(users.c.name == name)).first() is not None
