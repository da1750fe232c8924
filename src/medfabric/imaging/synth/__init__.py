"""Realistic synthetic DICOM corpora for tests and benchmarks: patients with planted PHI, CT/MR/CR/US/SC
series in five transfer syntaxes, a corpus.json manifest, and deliberately broken files for ingest tests.
"""

from .badfiles import BadFileReason, write_bad_files
from .corpus import MANIFEST_NAME, CorpusSummary, generate_corpus, generate_ct_series_bulk
from .phi import PRIVATE_CREATOR

__all__ = [
    "MANIFEST_NAME",
    "PRIVATE_CREATOR",
    "BadFileReason",
    "CorpusSummary",
    "generate_corpus",
    "generate_ct_series_bulk",
    "write_bad_files",
]
