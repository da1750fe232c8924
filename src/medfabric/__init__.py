"""medfabric: a data fabric for medical imaging.

``medfabric.open()`` returns the Fabric service for an existing fabric; ``medfabric.init()``
creates one. Imports are lazy so that the command line starts fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from medfabric.service.fabric import Fabric


def open(home: Any = None, user: str | None = None, **options: Any) -> Fabric:
    """Open the fabric at ``home`` (default ``$MEDFABRIC_HOME`` or ``~/.medfabric``) as ``user``."""
    from medfabric.service.fabric import open_fabric

    return open_fabric(home, user, **options)


def init(home: Any = None, **options: Any) -> Fabric:
    """Create a fabric at ``home`` and return it open."""
    from medfabric.service.fabric import init_fabric

    return init_fabric(home, **options)


__all__ = ["__version__", "init", "open"]
