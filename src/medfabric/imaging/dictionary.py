"""The DICOM data dictionary (PS3.6): keywords and VRs of standard attributes, for the hot path.

The entries are pydicom's (``pydicom._dicom_dict``, generated from PS3.6), read without importing the
pydicom package: importing pydicom loads its pixel handlers, numpy and PIL, which costs a tenth of a
second at the start of every command and of every ingest worker, while a header parse only needs
this table. Where pydicom is imported already, its own table is used (so entries a program added
with ``pydicom.datadict.add_dict_entry`` count here too). Lookups follow pydicom's
``keyword_for_tag`` and ``dictionary_VR``, repeating groups (``60xx`` overlays, ``50xx`` curves, …)
included; a test checks both agree on every entry.
"""

from __future__ import annotations

import importlib.util
import sys
from functools import lru_cache
from pathlib import Path
from types import ModuleType

Entry = tuple[str, str, str, str, str]  # VR, VM, name, retired, keyword


def _load() -> ModuleType:
    loaded = sys.modules.get("pydicom._dicom_dict")
    if loaded is not None:
        return loaded
    try:
        package = importlib.util.find_spec("pydicom")  # finds the package without running its __init__
        if package is None or not package.submodule_search_locations:
            raise ImportError("pydicom is not installed")
        path = Path(next(iter(package.submodule_search_locations))) / "_dicom_dict.py"
        spec = importlib.util.spec_from_file_location("medfabric.imaging._pydicom_dicom_dict", path)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load {path}")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        if not isinstance(getattr(module, "DicomDictionary", None), dict):
            raise ImportError(f"{path} holds no DicomDictionary")
        return module
    except (ImportError, OSError, SyntaxError):  # a pydicom laid out otherwise: the ordinary, slower way
        import pydicom._dicom_dict

        return pydicom._dicom_dict


_TABLE = _load()
DICTIONARY: dict[int, Entry] = _TABLE.DicomDictionary
REPEATERS: dict[str, Entry] = _TABLE.RepeatersDictionary
# each repeating-group mask ("60xx0010") as (its bits with x = 0, which bits must match), as pydicom
_MASKS = [
    (int(mask.replace("x", "0"), 16), int("".join("F0"[c == "x"] for c in mask), 16), mask)
    for mask in REPEATERS
]


def entry(tag: int) -> Entry | None:
    """The dictionary entry of a standard attribute (repeating groups included); None if unknown."""
    found = DICTIONARY.get(tag)
    if found is not None or (tag >> 16) & 1:
        return found
    for bits, care, mask in _MASKS:
        if (tag ^ bits) & care == 0:
            return REPEATERS[mask]
    return None


@lru_cache(maxsize=8192)
def keyword(tag: int) -> str:
    """The attribute's keyword; for a private or unknown attribute, its tag as 8 upper-case hex digits
    (as DICOM JSON names it)."""
    found = entry(tag)
    return found[4] if found is not None and found[4] else f"{tag:08X}"


@lru_cache(maxsize=8192)
def dictionary_vr(tag: int) -> str:
    """The attribute's VR in the dictionary ("US or SS" and the like as written there); "UN" if unknown."""
    found = entry(tag)
    return str(found[0]) if found is not None else "UN"
