"""Ingest events: one per stored instance, handed to ``fabric.engines.ingest_listeners`` after commit.

This is the hook the streams work connects to (a topic of new instances). A listener that fails is
logged and skipped: the instance is already durable, and one bad subscriber must not stop ingest.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IngestEvent:
    """A DICOM instance that has just been stored (its catalog rows are committed)."""

    volume: str
    path: str
    patient_id: str | None
    study_uid: str
    series_uid: str
    sop_uid: str
    modality: str | None
    size: int
    ingested_at: int  # ms since the epoch, UTC
    version: int = 1
    source: str = ""

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def publish(listeners: Iterable[Callable[[Any], None]], events: Iterable[IngestEvent]) -> None:
    """Hand each event to each listener, in order; a failing listener is logged, not raised."""
    targets = list(listeners)
    if not targets:
        return
    for event in events:
        for listener in targets:
            try:
                listener(event)
            except Exception:  # the instance is committed, whatever a subscriber does
                log.exception("ingest listener %r failed on %s", listener, event.path)
