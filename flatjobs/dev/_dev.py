"""``flatjobs dev``: a listener against an embedded emulator, its jobs triggered and shown.

Jobs are triggered as a user clicking an action would; each one's progress and outcome is
shown on the terminal (and in the emulator's jobs panel, a web page). ``--exit-when-idle``
waits for the triggered jobs, within ``--timeout``; ``--reload`` swaps in new code as it
changes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import difflib
import functools
import sys
import webbrowser
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

from flatjobs.client import FlatfileClient
from flatjobs.events._event import job_id_of
from flatjobs.events._topics import JOB_READY
from flatjobs.jobs._registry import Jobs
from flatjobs.listener._listener import Listener
from flatjobs.models import TERMINAL_STATUSES, JobStatus
from flatjobs.running._runner import Runner, signals_stop

from ._console import leave, say
from ._display import ProgressDisplay
from ._reload import Reloader
from ._target import TargetError, load_target

if TYPE_CHECKING:
    from flatjobs.emulator import Emulator
    from flatjobs.testing import Emulated

__all__ = ["dev_command"]


async def dev_command(args: argparse.Namespace) -> int:
    """``flatjobs dev``; returns the exit code."""
    from flatjobs.emulator import Emulator
    from flatjobs.testing import emulated

    # --timeout bounds the whole run, start-up included (--exit-when-idle).
    deadline = asyncio.get_running_loop().time() + args.timeout
    listener = load_target(args.target)
    if args.exit_when_idle and not args.trigger:
        raise TargetError(
            "nothing to do: --exit-when-idle waits for triggered jobs, and no --trigger "
            "names one (add --trigger DOMAIN:OPERATION, or leave --exit-when-idle out)"
        )
    reloader = (
        Reloader(args.target, functools.partial(say, "dev"), load_target) if args.reload else None
    )
    out = sys.stdout
    async with Emulator(record=False, seed=args.seed) as emu:
        display = ProgressDisplay(emu.job, out)
        emu.on_event(display.on_event)
        emu.on_event(_on_made_up_source(emu, display))
        head = f"flatjobs dev: emulator on {emu.url}, running {args.target}"
        print(f"{head}; jobs panel: {emu.panel_url}", file=out, flush=True)
        if args.open and not await asyncio.to_thread(webbrowser.open, emu.panel_url):
            say("dev", f"no browser to open: visit {emu.panel_url}")
        async with (
            emulated(
                listener, emulator=emu, concurrency=args.concurrency, grace_period=args.grace_period
            ) as env,
            _reloading(reloader, env.runner, env.client),
        ):
            with signals_stop(env.runner, functools.partial(say, "dev")):
                triggered, unhandled = await _trigger(env, listener, args, display)
                if not args.exit_when_idle:
                    stats = await env.stopped()
                    return leave(0, stats.abandoned)
                running: list[str] = []
                try:
                    async with asyncio.timeout_at(deadline):
                        for job_id, name in triggered:
                            if name not in unhandled:
                                await emu.wait_for(job_id, timeout=args.timeout)
                except TimeoutError:
                    running = [
                        j
                        for j, name in triggered
                        if name not in unhandled and emu.job(j).status not in TERMINAL_STATUSES
                    ]
                    # A second stop cancels at once: their jobs are failed with a Retry
                    # button, without the grace period a drain would give them.
                    env.runner.stop()
                env.runner.stop()
                stats = await env.stopped()
        summary, wrong = _summary(env, triggered, unhandled, running, args.timeout)
        print(summary, file=out, flush=True)
        return leave(1 if wrong else 0, stats.abandoned)


async def _trigger(
    env: Emulated, listener: Listener, args: argparse.Namespace, display: ProgressDisplay
) -> tuple[list[tuple[str, str]], list[str]]:
    """Trigger the jobs ``--trigger`` names, as a user clicking their actions would.

    Returns:
        (job id, name) of each job triggered, and the names no callback of ``listener``
        handles (each said on ``display``, with the closest name it handles).
    """
    triggered: list[tuple[str, str]] = []
    unhandled: list[str] = []
    for name in args.trigger:
        job = await env.trigger(name, input=args.input, wait=False)
        triggered.append((job.id, name))
        ready = next(
            e
            for e in reversed(env.emulator.events)
            if e["topic"] == JOB_READY and job_id_of(e) == job.id
        )
        if not listener.match(ready):
            unhandled.append(name)
            display.note(
                f"  {name:<28} no callback of {args.target} handles this job"
                f"{_meant(name, listener)}"
            )
    return triggered, unhandled


def _meant(name: str, listener: Listener) -> str:
    """``: did you mean 'x'?`` naming the job of the listener's handlers closest to
    ``name``, or nothing."""
    known = [
        job
        for router in listener.routers()
        if isinstance(router, Jobs)
        for job in router.job_names()
        if not any(c in job for c in "*?[")  # a glob would have matched
    ]
    close = difflib.get_close_matches(name, known, n=1)
    return f": did you mean {close[0]}?" if close else ""


_MADE_UP_SOURCES = ("workbook", "sheet", "file", "document")
"""The domains whose triggered job is about a made-up id when the emulator holds none."""


def _on_made_up_source(emu: Emulator, display: ProgressDisplay) -> Callable[[dict[str, Any]], None]:
    """An event callback saying, under a job that failed on the made-up id of its workbook,
    sheet, file or document (the emulator held none of its kind), that --seed gives it one:
    the failure itself only says that a read of that id found nothing."""

    def hint(event: dict[str, Any]) -> None:
        job_id = job_id_of(event)
        if event.get("topic") != "job:failed" or job_id is None:
            return
        job = emu.job(job_id)
        domain = str(job.type)
        said = f"{job.info} {job.outcome.message if job.outcome else ''}"
        if (
            domain in _MADE_UP_SOURCES
            and emu.data.first(domain) is None
            and job.source is not None  # always set on the emulator's jobs; typed optional
            and job.source in said
        ):
            display.note(
                f"  {job.job_name:<28} the emulator holds no {domain}: this job was about "
                f"the made-up {job.source}; pass --seed FILE to give it a {domain} to work on"
            )

    return hint


@contextlib.asynccontextmanager
async def _reloading(
    reloader: Reloader | None, runner: Runner, client: FlatfileClient
) -> AsyncIterator[None]:
    """With a reloader, watch for changes for the duration of the block."""
    if reloader is None:
        yield
        return
    stop = asyncio.Event()
    watching = asyncio.create_task(reloader.watch(runner, client, stop))
    try:
        yield
    finally:
        stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(watching, 5)


def _summary(
    env: Emulated,
    triggered: list[tuple[str, str]],
    unhandled: list[str],
    running: list[str],
    timeout: float,
) -> tuple[str, bool]:
    """The last line of ``--exit-when-idle``: how the triggered jobs ended; and whether
    any went wrong (failed unexpectedly, had no handler, or was stopped at the timeout)."""
    jobs = [env.emulator.job(job_id) for job_id, _ in triggered]
    done = sum(j.status == JobStatus.COMPLETE for j in jobs)
    failed = [j for j in jobs if j.status == JobStatus.FAILED]
    unexpected = [j for j in failed if j.id not in env.results or not env.results[j.id].expected]
    summary = f"{len(jobs)} job(s): {done} complete, {len(failed)} failed"
    if failed:
        summary += f" ({len(unexpected)} unexpectedly)"
    if unhandled:
        summary += f", {len(unhandled)} with no handler"
    if running:
        summary += f", {len(running)} stopped at the {timeout:g}s timeout"
    return summary, bool(unexpected or unhandled or running)
