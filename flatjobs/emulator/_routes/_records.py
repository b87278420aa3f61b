"""``/sheets/{id}/records`` and ``/commits``: a sheet's records, and the commits their
writes make. A write starts the record hooks unless its headers say not to
(:func:`~flatjobs.emulator._data._commits.hooks_requested`); a body may come gzipped
(``Content-Encoding: gzip``, as Flatfile's record hook writes back): the middleware inflates
it, within the same size limit."""

from __future__ import annotations

from aiohttp import web

from flatjobs.emulator._data import paused_gc
from flatjobs.emulator._data._commits import hooks_requested
from flatjobs.emulator._http import answer, answer_fast, body_bytes, params, parsed_body

from ._resource import Resource

__all__ = ["CommitRoutes", "RecordRoutes"]


class RecordRoutes(Resource):
    """``/sheets/{id}/records``: read, insert, update, delete. Batches of thousands of
    records are worked on with the garbage collector paused."""

    routes = (
        ("GET", "/v1/sheets/{sheet_id}/records", "records.list", "list_records"),
        ("POST", "/v1/sheets/{sheet_id}/records", "records.insert", "insert_records"),
        ("PUT", "/v1/sheets/{sheet_id}/records", "records.update", "update_records"),
        ("DELETE", "/v1/sheets/{sheet_id}/records", "records.delete", "delete_records"),
    )

    async def list_records(self, request: web.Request) -> web.Response:
        sheet_id = request.match_info["sheet_id"]
        with paused_gc():
            return answer_fast(self.data.get_records(sheet_id, params(request)))

    async def insert_records(self, request: web.Request) -> web.Response:
        sheet_id = request.match_info["sheet_id"]
        raw = await body_bytes(request)
        with paused_gc():
            return answer_fast(
                self.data.insert_records(
                    sheet_id, parsed_body(raw), hooks=hooks_requested(request.headers)
                )
            )

    async def update_records(self, request: web.Request) -> web.Response:
        sheet_id = request.match_info["sheet_id"]
        raw = await body_bytes(request)
        hooks = hooks_requested(request.headers)
        with paused_gc():
            return answer(
                self.data.update_records(sheet_id, parsed_body(raw), params(request), hooks=hooks)
            )

    async def delete_records(self, request: web.Request) -> web.Response:
        sheet_id = request.match_info["sheet_id"]
        hooks = hooks_requested(request.headers)
        return answer(self.data.delete_records(sheet_id, params(request), hooks=hooks))


class CommitRoutes(Resource):
    """``/commits``: one commit, and its completion."""

    routes = (
        ("GET", "/v1/commits/{commit_id}", "commits.get", "get_commit"),
        ("POST", "/v1/commits/{commit_id}/complete", "commits.complete", "complete_commit"),
    )

    async def get_commit(self, request: web.Request) -> web.Response:
        return answer(self.data.get_commit(request.match_info["commit_id"]))

    async def complete_commit(self, request: web.Request) -> web.Response:
        self.data.complete_commit(request.match_info["commit_id"])
        return answer({"success": True})
