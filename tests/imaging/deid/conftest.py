"""Fixtures for the de-identification tests: planted studies, their de-identified copies, a synth corpus."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from medfabric.imaging.deid import Deidentifier, DeidOutcome, Profile

from .planted import PlantedFile, write_study_set

SECRET = b"medfabric-test-secret-0123456789"
OTHER_SECRET = b"another-secret-for-other-outputs"

Deidentify = Callable[[Profile], dict[Path, tuple[DeidOutcome, Path]]]


@pytest.fixture(scope="session")
def planted(tmp_path_factory: pytest.TempPathFactory) -> list[PlantedFile]:
    return write_study_set(tmp_path_factory.mktemp("planted"))


@pytest.fixture(scope="session")
def deidentify_planted(planted: list[PlantedFile], tmp_path_factory: pytest.TempPathFactory) -> Deidentify:
    """De-identify the planted set under a profile (cached per profile): source path → (outcome, output)."""
    cache: dict[Profile, dict[Path, tuple[DeidOutcome, Path]]] = {}

    def run(profile: Profile) -> dict[Path, tuple[DeidOutcome, Path]]:
        if profile not in cache:
            out = tmp_path_factory.mktemp(f"deid-{profile.name}")
            engine = Deidentifier(profile, SECRET)
            cache[profile] = {}
            for item in planted:
                target = out / item.path.relative_to(item.path.parents[2])
                cache[profile][item.path] = (engine.deidentify_file(item.path, target), target)
        return cache[profile]

    return run
