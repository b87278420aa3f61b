"""Fixtures of the example tests: ``contacts``, an emulator seeded with the 1,204 contacts
of ``data/contacts.json`` (a workbook with one sheet; the seed format is in the docs'
"Seed the emulator" how-to).

The plugin flatjobs registers when installed gives ``flatfile_emulator``, an empty one."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from flatjobs.emulator import Emulator

SEED = Path(__file__).parent / "data" / "contacts.json"


@pytest.fixture
async def contacts() -> AsyncIterator[Emulator]:
    async with Emulator(seed=SEED) as emu:
        yield emu
