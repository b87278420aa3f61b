"""``/jobs``: the job state machine's calls."""

from __future__ import annotations

from aiohttp import web

from flatjobs.emulator._http import answer, json_body, page
from flatjobs.models import Job, to_wire

from ._resource import Resource

__all__ = ["JobRoutes"]

JOBS_PAGE_SIZE = 20
"""``GET /jobs``'s default page size (Flatfile's documented default)."""


def _job(job: Job) -> web.Response:
    return answer(to_wire(job))


class JobRoutes(Resource):
    """``/jobs``: made, read, changed, and moved through their lifecycle."""

    routes = (
        ("GET", "/v1/jobs", "jobs.list", "list_jobs"),
        ("POST", "/v1/jobs", "jobs.create", "create_job"),
        ("GET", "/v1/jobs/{job_id}", "jobs.get", "get_job"),
        ("PATCH", "/v1/jobs/{job_id}", "jobs.update", "update_job"),
        ("DELETE", "/v1/jobs/{job_id}", "jobs.delete", "delete_job"),
        ("POST", "/v1/jobs/{job_id}/ack", "jobs.ack", "ack"),
        ("POST", "/v1/jobs/{job_id}/complete", "jobs.complete", "complete"),
        ("POST", "/v1/jobs/{job_id}/fail", "jobs.fail", "fail"),
        ("POST", "/v1/jobs/{job_id}/cancel", "jobs.cancel", "cancel"),
        ("POST", "/v1/jobs/{job_id}/retry", "jobs.retry", "retry"),
        ("POST", "/v1/jobs/{job_id}/execute", "jobs.execute", "execute"),
        ("POST", "/v1/jobs/{job_id}/outcome/ack", "jobs.outcome_ack", "outcome_ack"),
        ("POST", "/v1/jobs/{job_id}/split", "jobs.split", "split"),
    )

    async def list_jobs(self, request: web.Request) -> web.Response:
        jobs = [to_wire(j) for j in self.state.list_jobs(request.query)]
        return page(jobs, request.query, JOBS_PAGE_SIZE)

    async def create_job(self, request: web.Request) -> web.Response:
        return _job(self.state.create_job(await json_body(request)))

    async def get_job(self, request: web.Request) -> web.Response:
        return _job(self.state.get_job(request.match_info["job_id"]))

    async def update_job(self, request: web.Request) -> web.Response:
        job_id = request.match_info["job_id"]
        return _job(self.state.update(job_id, await json_body(request)))

    async def delete_job(self, request: web.Request) -> web.Response:
        self.state.delete(request.match_info["job_id"])
        return answer({"success": True})

    async def ack(self, request: web.Request) -> web.Response:
        job_id = request.match_info["job_id"]
        return _job(self.state.ack(job_id, await json_body(request)))

    async def complete(self, request: web.Request) -> web.Response:
        job_id = request.match_info["job_id"]
        return _job(self.state.finish(job_id, await json_body(request), call="complete"))

    async def fail(self, request: web.Request) -> web.Response:
        job_id = request.match_info["job_id"]
        return _job(self.state.finish(job_id, await json_body(request), call="fail"))

    async def cancel(self, request: web.Request) -> web.Response:
        job_id = request.match_info["job_id"]
        return _job(self.state.cancel(job_id, await json_body(request)))

    async def retry(self, request: web.Request) -> web.Response:
        return _job(self.state.retry(request.match_info["job_id"]))

    async def execute(self, request: web.Request) -> web.Response:
        self.state.execute(request.match_info["job_id"])
        return answer({"success": True})

    async def outcome_ack(self, request: web.Request) -> web.Response:
        return _job(self.state.ack_outcome(request.match_info["job_id"]))

    async def split(self, request: web.Request) -> web.Response:
        job_id = request.match_info["job_id"]
        return _job(self.state.split(job_id, await json_body(request)))
