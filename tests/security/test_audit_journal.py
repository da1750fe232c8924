"""The audit journal: a record is durable before the access returns, and reaches the chained log
exactly once, even when the process that wrote it dies before moving it there."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from medfabric.alarms import AUDIT_JOURNAL
from medfabric.audit import journal
from medfabric.security.keys import read_secret
from medfabric.service.audit import JOURNAL_DIR, AuditWriter
from medfabric.service.fabric import Fabric, open_fabric
from tests.conftest import make_fabric

pytestmark = pytest.mark.xdist_group("audit-journal")

READER = """
import os, sys
from medfabric.service.audit import AuditWriter
AuditWriter.DRAIN_SECONDS = 3600  # nothing moves into the log on its own: the crash leaves it journaled
from medfabric.service.fabric import open_fabric
fabric = open_fabric({home!r}, user="admin")
for n in range({before}):
    fabric.fs.read("/ct/a.dcm")
if {flush}:
    next(l for l in fabric.engines.listeners if isinstance(l, AuditWriter)).flush()
for n in range({after}):
    fabric.fs.read("/ct/b.dcm")
os._exit(0)  # a crash: no close, no drain
"""


@pytest.fixture
def home(tmp_path: Path) -> Path:
    fabric = make_fabric(tmp_path)
    with fabric:
        fabric.volumes.create("ct", "/ct")
        fabric.admin.config_save({"mfs.enable.audit.log": "1"})
        fabric.audit.data("ct", True)
        fabric.fs.write("/ct/a.dcm", b"DICM a")
        fabric.fs.write("/ct/b.dcm", b"DICM b")
    return fabric.config.home


def crash_after_reads(home: Path, before: int, after: int = 0, *, flush: bool = False) -> None:
    code = textwrap.dedent(READER.format(home=str(home), before=before, after=after, flush=flush))
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[2], timeout=120)


def reads(fabric: Fabric, path: str) -> int:
    return sum(1 for r in fabric.audit.query(volume="ct", operation="read") if r.path == path)


def test_records_of_a_crashed_process_reach_the_log_when_the_fabric_is_next_opened(home: Path) -> None:
    crash_after_reads(home, 7)
    leftovers = journal.journals(home / JOURNAL_DIR)
    assert len(leftovers) == 1  # the dead process's journal, with its 7 records
    with open_fabric(home, user="admin") as fabric:
        assert reads(fabric, "/ct/a.dcm") == 7
        assert fabric.audit.verify().ok
    assert journal.journals(home / JOURNAL_DIR) == []


def test_records_already_in_the_log_are_not_replayed_twice(home: Path) -> None:
    crash_after_reads(home, 4, 3, flush=True)  # 4 moved into the log with their mark, 3 only journaled
    with open_fabric(home, user="admin") as fabric:
        assert (reads(fabric, "/ct/a.dcm"), reads(fabric, "/ct/b.dcm")) == (4, 3)
        assert fabric.audit.verify().ok


def test_a_torn_or_tampered_frame_ends_the_replay_and_raises_an_alarm(home: Path) -> None:
    crash_after_reads(home, 5)
    (path,) = journal.journals(home / JOURNAL_DIR)
    data = bytearray(path.read_bytes())
    frames = journal.read_frames(path, read_secret(home / "keys" / "audit.key", "audit key")).frames
    assert len(frames) == 5
    data[frames[3].offset + 30] ^= 0x01  # the fourth record changed on disk
    path.write_bytes(bytes(data))
    with open_fabric(home, user="admin") as fabric:
        assert reads(fabric, "/ct/a.dcm") == 3
        assert any(alarm.name == AUDIT_JOURNAL for alarm in fabric.admin.alarms())
        assert fabric.audit.verify().ok


def test_a_live_writers_journal_is_left_to_it(home: Path) -> None:
    with open_fabric(home, user="admin") as first:
        first.fs.read("/ct/a.dcm")  # journaled by the first opener, which is alive
        with open_fabric(home, user="admin") as second:
            writer = next(item for item in second.engines.listeners if isinstance(item, AuditWriter))
            assert writer.recovered == 0
        assert reads(first, "/ct/a.dcm") == 1


def test_journals_rotate_and_are_removed_once_the_log_holds_them(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(AuditWriter, "ROTATE_BYTES", 2000)
    with open_fabric(home, user="admin") as fabric:
        for _ in range(40):
            fabric.fs.read("/ct/a.dcm")
        assert reads(fabric, "/ct/a.dcm") == 40
        assert len(journal.journals(home / JOURNAL_DIR)) == 1  # the current one only
        assert fabric.audit.verify().ok
    assert journal.journals(home / JOURNAL_DIR) == []


def test_concurrent_readers_are_all_recorded(home: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with open_fabric(home, user="admin") as fabric:
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(lambda _n: fabric.fs.read("/ct/b.dcm"), range(200)))
        assert reads(fabric, "/ct/b.dcm") == 200
        assert fabric.audit.verify().ok


def test_the_journal_holds_no_record_in_clear_of_another_fabric_key(home: Path) -> None:
    crash_after_reads(home, 1)
    (path,) = journal.journals(home / JOURNAL_DIR)
    assert journal.read_frames(path, os.urandom(32)).frames == []  # frames check against the audit key
