"""The scheduler: a loop that runs due schedule jobs, as a thread a server can embed.

It decides nothing itself: each pass calls the runner it was given (the service's
``ScheduleService.run_due``), which claims each due run in the catalog, so any number of
schedulers (a server's, a cron ``tick``) may run side by side without doing a job twice.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Protocol

from medfabric.errors import InvalidInput

log = logging.getLogger(__name__)


class Outcome(Protocol):
    def as_json(self) -> dict[str, object]: ...


Runner = Callable[[], Sequence[Outcome]]


class Scheduler:
    """Runs ``runner`` every ``interval_s`` seconds until stopped; ``tick`` runs one pass now."""

    def __init__(
        self,
        runner: Runner,
        *,
        interval_s: float = 60.0,
        on_outcome: Callable[[Outcome], None] | None = None,
    ) -> None:
        if interval_s <= 0:
            raise InvalidInput("the scheduler's interval must be positive")
        self.runner = runner
        self.interval_s = interval_s
        self.on_outcome = on_outcome
        self.passes = 0
        self.last_error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def tick(self) -> list[Outcome]:
        """One pass; an error in it is logged and kept, and never ends the loop."""
        try:
            outcomes = list(self.runner())
            self.last_error = None
        except Exception as error:
            self.last_error = f"{type(error).__name__}: {error}"
            log.exception("scheduler pass failed")
            outcomes = []
        self.passes += 1
        if self.on_outcome is not None:
            for outcome in outcomes:
                self.on_outcome(outcome)
        return outcomes

    def run(self) -> None:
        """Pass after pass in this thread, until ``stop()`` (or KeyboardInterrupt)."""
        self._stop.clear()
        while not self._stop.is_set():
            self.tick()
            self._stop.wait(self.interval_s)

    def start(self) -> None:
        """Run in a daemon thread (what a server does)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self.run, name="medfabric-scheduler", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        """Ask the loop to end after the pass in progress; wait for it up to ``timeout``."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()
