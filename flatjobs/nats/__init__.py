"""The distributed mode: many processes, each job once, through NATS JetStream.

Install the extra (in a checkout: ``python3 -m pip install -e ".[nats]"``) and run::

    flatjobs run app:listener --nats nats://nats.internal:4222 --role ingress
    flatjobs run app:listener --nats nats://nats.internal:4222 --role worker   # as many as needed

*Ingress* processes take events from the platform (push or polling) and publish each into a
work-queue stream, the event id as the message id (dispatched once within the duplicate
window, however many ingress processes read it: the workers claim each event id); they
keep the feed's cursor in a key-value bucket, and one of them runs the reconciliation
sweep. *Workers* pull from the stream and dispatch through the
ordinary :class:`flatjobs.Runner`, listener and job lifecycle: a job runs in the one worker
holding its lease, renewed by its heartbeats; its message is acknowledged once the job has
ended. A worker that dies leaves a message that comes back after AckWait to a worker that
finds the job executing with no lease, and fails it with a Retry button (or runs it again
when its handler opted in). See the docs' *Scaling* page for deployment, settings and
guarantees.

The same from Python (not run here: it needs a server)::

    async with await connect("nats://127.0.0.1:4222", NatsSettings(ack_wait=30)) as broker:
        await run_distributed(listener, broker, role="worker", concurrency=50)

This package is the only one that imports ``nats``; ``import flatjobs`` does not need it.
"""

from __future__ import annotations

from ._broker import Broker as Broker
from ._broker import connect as connect
from ._held import WorkerStats as WorkerStats
from ._ingress import Ingress as Ingress
from ._ingress import IngressStats as IngressStats
from ._judging import POISON_MESSAGE as POISON_MESSAGE
from ._lease import Lease as Lease
from ._lease import LeaseLost as LeaseLost
from ._lease import Leases as Leases
from ._run import ROLES as ROLES
from ._run import Connectivity as Connectivity
from ._run import DistributedRunner as DistributedRunner
from ._run import DistributedStats as DistributedStats
from ._run import Role as Role
from ._run import run_distributed as run_distributed
from ._settings import NatsSettings as NatsSettings
from ._settings import token as token
from ._worker import WorkerSource as WorkerSource

__all__ = [
    "POISON_MESSAGE",
    "ROLES",
    "Broker",
    "Connectivity",
    "DistributedRunner",
    "DistributedStats",
    "Ingress",
    "IngressStats",
    "Lease",
    "LeaseLost",
    "Leases",
    "NatsSettings",
    "Role",
    "WorkerSource",
    "WorkerStats",
    "connect",
    "run_distributed",
    "token",
]
