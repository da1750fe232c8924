"""De-identification of DICOM instances after DICOM PS3.15 Annex E: profiles, pseudonyms, engine, verifier.

The public surface is re-exported here; callers never reach into the submodules' internals. Nothing in
this package stores originals or secrets: re-identification pairs are handed back to the caller.
"""

from medfabric.imaging.deid.engine import ActionCount, Deidentifier, DeidOutcome, ReidPair
from medfabric.imaging.deid.profiles import (
    BASIC,
    BUILTIN_PROFILES,
    LONGITUDINAL,
    RESEARCH,
    Option,
    Profile,
    SafePrivateAttribute,
    get_profile,
    load_profile,
    profile_from_spec,
)
from medfabric.imaging.deid.table import ConfidentialityTable, TableRow, load_table
from medfabric.imaging.deid.verify import Finding, verify_deidentified, verify_path

__all__ = [
    "BASIC",
    "BUILTIN_PROFILES",
    "LONGITUDINAL",
    "RESEARCH",
    "ActionCount",
    "ConfidentialityTable",
    "DeidOutcome",
    "Deidentifier",
    "Finding",
    "Option",
    "Profile",
    "ReidPair",
    "SafePrivateAttribute",
    "TableRow",
    "get_profile",
    "load_profile",
    "load_table",
    "profile_from_spec",
    "verify_deidentified",
    "verify_path",
]
