"""Deterministic DICOM UIDs for the synthetic corpus, derived from the seed and a naming path.

Never uses the clock, uuid4 or pydicom's random ``generate_uid``: the same seed must yield
byte-identical files, so every UID is a name-based UUID (RFC 9562 version 5) under the 2.25 arc.
"""

from __future__ import annotations

import uuid

_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://medfabric.invalid/imaging/synth")

IMPLEMENTATION_VERSION_NAME = "MEDFABRIC_SYN1"


def derive_uid(seed: int, *parts: object) -> str:
    """Return a ``2.25.<decimal UUID>`` UID (at most 44 characters) unique to (seed, parts)."""
    name = "/".join([str(seed), *(str(part) for part in parts)])
    return f"2.25.{uuid.uuid5(_NAMESPACE, name).int}"


# The same for every corpus: it names the software that wrote the files, not the data.
IMPLEMENTATION_CLASS_UID = f"2.25.{uuid.uuid5(_NAMESPACE, 'implementation-class').int}"
