"""A listener whose jobs fail deep in the handler's own code, for the CLI's log tests."""

from __future__ import annotations

from typing import Any

from flatjobs import FlatfileEvent, Jobs, Tick
from flatjobs.log import get_logger

jobs = Jobs()
log = get_logger("app")


def email_of(row: dict[str, Any]) -> str:
    return str(row["email"])


def parse(rows: list[dict[str, Any]]) -> list[str]:
    return [email_of(row) for row in rows]


@jobs.handle("sheet:import")
async def import_rows(event: FlatfileEvent, tick: Tick) -> None:
    parse([{"name": "Ada"}])


@jobs.handle("sheet:flood")
async def flood(event: FlatfileEvent, tick: Tick) -> None:
    log.info("a megabyte value", value="q" * 1_000_000)
    raise ValueError("z" * 1_000_000)
