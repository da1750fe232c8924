"""The data dictionary read without pydicom agrees with pydicom's lookups, and ingest's hot path does
not import pydicom (its import pulls numpy and PIL: a tenth of a second per process)."""

from __future__ import annotations

import random
import subprocess
import sys

from pydicom._dicom_dict import DicomDictionary, RepeatersDictionary
from pydicom.datadict import dictionary_VR, keyword_for_tag

from medfabric.imaging import dictionary


def test_keywords_and_vrs_agree_with_pydicom_for_every_entry_repeaters_and_unknown_tags() -> None:
    rng = random.Random(3)
    tags = list(DicomDictionary)
    for mask in RepeatersDictionary:  # 60xx overlays, 50xx curves, …: a few of each group
        for _ in range(5):
            tags.append(int("".join(c if c != "x" else rng.choice("0123456789ABCDEF") for c in mask), 16))
    tags += [rng.getrandbits(32) for _ in range(20_000)]  # mostly unknown, half of them private
    for tag in tags:
        try:
            vr = str(dictionary_VR(tag))
        except KeyError:
            vr = "UN"
        assert dictionary.keyword(tag) == (keyword_for_tag(tag) or f"{tag:08X}"), hex(tag)
        assert dictionary.dictionary_vr(tag) == vr, hex(tag)


def test_parsing_a_common_header_does_not_import_pydicom() -> None:
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from medfabric.imaging.ingest.importer import parse_files\n"
        "from medfabric.service.fabric import Fabric\n"
        "assert 'pydicom' not in sys.modules, 'imported by the modules'\n"
        "[parsed] = parse_files([sys.argv[1]])\n"
        "assert parsed.outcome.sop_instance_uid, parsed\n"
        "assert 'pydicom' not in sys.modules, 'imported by the parse'\n"
    )
    import tempfile
    from pathlib import Path

    from tests.imaging.test_ingest_helpers import make_instance

    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "ct.dcm"
        path.write_bytes(make_instance(modality="CT"))
        result = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
