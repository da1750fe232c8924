"""Other fabrics, known by name: ``remote add NAME LOCATION``, and how a name or path reaches one.

``/mapr/<fabric>/<path>`` and ``<fabric>:<path>`` name a path in a registered fabric (or in this
one, by its own name); ``vol@fabric`` names a volume. A location is a fabric home directory
today; an ``https://`` URL will name a medfabric server once servers exist (a new Transport).
"""

from __future__ import annotations

import builtins
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from medfabric.catalog.schema import remotes
from medfabric.errors import Conflict, InvalidInput, NotFound
from medfabric.replication.transport import Transport
from medfabric.service.access import require_admin

if TYPE_CHECKING:
    from medfabric.service.fabric import Fabric

REMOTE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$")


@dataclass(frozen=True)
class Remote:
    name: str
    location: str
    fabric_id: str
    fabric_name: str
    added_at: int
    added_by: str

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "location": self.location,
            "fabricid": self.fabric_id,
            "fabricname": self.fabric_name,
            "addedtime": self.added_at,
            "addedby": self.added_by,
        }


def parse_fabric_path(text: str) -> tuple[str | None, str]:
    """``/mapr/dr/mri`` and ``dr:/mri`` → ("dr", "/mri"); a plain ``/mri`` → (None, "/mri")."""
    if text.startswith("/mapr/"):
        fabric, _, rest = text[len("/mapr/") :].partition("/")
        if not fabric:
            raise InvalidInput(f"{text!r}: /mapr/ must be followed by a fabric name")
        return fabric, "/" + rest
    head, colon, rest = text.partition(":")
    if colon and rest.startswith("/") and "/" not in head:
        return head, rest
    if not text.startswith("/"):
        raise InvalidInput(f"{text!r} is not a path: write /PATH, FABRIC:/PATH or /mapr/FABRIC/PATH")
    return None, text


def parse_volume_name(text: str) -> tuple[str, str | None]:
    """``vol@fabric`` → ("vol", "fabric"); ``vol`` → ("vol", None)."""
    volume, at, fabric = text.rpartition("@")
    if not at:
        return text, None
    if not volume or not fabric:
        raise InvalidInput(f"{text!r}: write VOLUME or VOLUME@FABRIC")
    return volume, fabric


class RemoteService:
    def __init__(self, fabric: Fabric) -> None:
        self.fabric = fabric

    def add(self, name: str, location: str) -> Remote:
        """Register another fabric; it is opened once to learn its identity."""
        fabric = self.fabric
        with fabric.access("remote add") as note:
            require_admin(fabric.principal, "register remote fabrics")
            if not REMOTE_NAME.match(name):
                raise InvalidInput(f"invalid remote name {name!r}: letters, digits, '.', '-', '_'")
            if name == fabric.name:
                raise Conflict(f"{name} is this fabric's own name")
            transport = self.open_location(location)
            try:
                remote = Remote(
                    name,
                    transport.location,
                    transport.fabric_id,
                    transport.fabric_name,
                    fabric.clock.now_ms(),
                    fabric.principal.name,
                )
            finally:
                transport.close()
            if remote.fabric_id == fabric.config.fabric_id:
                raise Conflict(f"{location} is this fabric itself")
            with fabric.catalog.write() as conn:
                if conn.execute(sa.select(remotes.c.name).where(remotes.c.name == name)).first() is not None:
                    raise Conflict(f"remote {name!r} already exists (remove it first to change it)")
                conn.execute(
                    remotes.insert().values(
                        name=remote.name,
                        location=remote.location,
                        fabric_id=remote.fabric_id,
                        fabric_name=remote.fabric_name,
                        added_at=remote.added_at,
                        added_by=remote.added_by,
                    )
                )
            note.detail = f"remote {name} = {remote.location} ({remote.fabric_name})"
            return remote

    def list(self) -> builtins.list[Remote]:
        with self.fabric.access("remote list"), self.fabric.catalog.read() as conn:
            rows = conn.execute(sa.select(remotes).order_by(remotes.c.name)).all()
        return [Remote(*(row._mapping[key] for key in Remote.__dataclass_fields__)) for row in rows]

    def get(self, name: str) -> Remote:
        for remote in self.list():
            if remote.name == name:
                return remote
        raise NotFound(f"no remote fabric {name!r} (register it with `medfabric remote add {name} LOCATION`)")

    def remove(self, name: str) -> None:
        fabric = self.fabric
        with fabric.access("remote remove") as note:
            require_admin(fabric.principal, "remove remote fabrics")
            with fabric.catalog.write() as conn:
                if conn.execute(remotes.delete().where(remotes.c.name == name)).rowcount == 0:
                    raise NotFound(f"no remote fabric {name!r}")
            note.detail = f"remote {name}"

    # -- reaching fabrics --

    def is_self(self, name: str | None) -> bool:
        return name is None or name == self.fabric.name

    def transport(self, name: str | None) -> Transport:
        """This fabric (``None`` or its own name) or a registered one, checked to be the same fabric."""
        from medfabric.replication.local import LocalTransport

        if self.is_self(name):
            return LocalTransport(self.fabric)
        assert name is not None
        remote = self.get(name)
        return self.open_location(remote.location, expect=remote.fabric_id)

    def open_location(self, location: str | None, *, expect: str | None = None) -> Transport:
        """A transport to the fabric at ``location``, acting as this fabric's principal."""
        from medfabric.replication.local import LocalTransport
        from medfabric.service.fabric import open_fabric

        if location is None:
            return LocalTransport(self.fabric)
        if location.startswith(("http://", "https://")):
            raise InvalidInput(
                f"{location}: reaching a fabric through a medfabric server is not available yet; "
                "give the fabric's home directory"
            )
        home = Path(location).expanduser().resolve()
        other = open_fabric(
            home, self.fabric.principal.name, clock=self.fabric.clock, interface=self.fabric.interface
        )
        transport = LocalTransport(other, owned=True)
        if expect is not None and transport.fabric_id != expect:
            transport.close()
            raise Conflict(f"the fabric at {location} is not the one registered there (id {expect})")
        return transport
