"""``/workbooks`` and ``/sheets``."""

from __future__ import annotations

from aiohttp import web

from flatjobs.emulator._data import paused_gc
from flatjobs.emulator._http import answer, download, json_body, params

from ._resource import Resource

__all__ = ["SheetRoutes", "WorkbookRoutes"]


class WorkbookRoutes(Resource):
    """``/workbooks``, and the commits of a workbook's sheets."""

    routes = (
        ("GET", "/v1/workbooks", "workbooks.list", "list_workbooks"),
        ("POST", "/v1/workbooks", "workbooks.create", "create_workbook"),
        ("GET", "/v1/workbooks/{workbook_id}", "workbooks.get", "get_workbook"),
        ("PATCH", "/v1/workbooks/{workbook_id}", "workbooks.update", "update_workbook"),
        ("DELETE", "/v1/workbooks/{workbook_id}", "workbooks.delete", "delete_workbook"),
        ("GET", "/v1/workbooks/{workbook_id}/commits", "workbooks.commits", "workbook_commits"),
    )

    async def list_workbooks(self, request: web.Request) -> web.Response:
        return answer(self.data.list_workbooks(params(request)))

    async def create_workbook(self, request: web.Request) -> web.Response:
        return answer(self.data.create_workbook(await json_body(request)))

    async def get_workbook(self, request: web.Request) -> web.Response:
        return answer(self.data.get_workbook(request.match_info["workbook_id"]))

    async def update_workbook(self, request: web.Request) -> web.Response:
        workbook_id = request.match_info["workbook_id"]
        return answer(self.data.update_workbook(workbook_id, await json_body(request)))

    async def delete_workbook(self, request: web.Request) -> web.Response:
        self.data.delete_workbook(request.match_info["workbook_id"])
        return answer({"success": True})

    async def workbook_commits(self, request: web.Request) -> web.Response:
        workbook = self.data.workbook(request.match_info["workbook_id"])
        sheets = [s.id for s in workbook.sheets]
        return answer(self.data.list_commits(sheets, params(request)))


class SheetRoutes(Resource):
    """``/sheets``: a sheet, its counts, its CSV and its commits (its records:
    :class:`~flatjobs.emulator._routes._records.RecordRoutes`)."""

    routes = (
        ("GET", "/v1/sheets", "sheets.list", "list_sheets"),
        ("GET", "/v1/sheets/{sheet_id}", "sheets.get", "get_sheet"),
        ("PATCH", "/v1/sheets/{sheet_id}", "sheets.update", "update_sheet"),
        ("DELETE", "/v1/sheets/{sheet_id}", "sheets.delete", "delete_sheet"),
        ("GET", "/v1/sheets/{sheet_id}/counts", "sheets.counts", "sheet_counts"),
        ("GET", "/v1/sheets/{sheet_id}/download", "sheets.download", "sheet_download"),
        ("GET", "/v1/sheets/{sheet_id}/commits", "sheets.commits", "sheet_commits"),
    )

    async def list_sheets(self, request: web.Request) -> web.Response:
        return answer(self.data.list_sheets(params(request)))

    async def get_sheet(self, request: web.Request) -> web.Response:
        return answer(self.data.get_sheet(request.match_info["sheet_id"]))

    async def update_sheet(self, request: web.Request) -> web.Response:
        sheet_id = request.match_info["sheet_id"]
        return answer(self.data.update_sheet(sheet_id, await json_body(request)))

    async def delete_sheet(self, request: web.Request) -> web.Response:
        self.data.delete_sheet(request.match_info["sheet_id"])
        return answer({"success": True})

    async def sheet_counts(self, request: web.Request) -> web.Response:
        return answer(self.data.counts(request.match_info["sheet_id"], params(request)))

    async def sheet_download(self, request: web.Request) -> web.Response:
        with paused_gc():
            content, name = self.data.download(request.match_info["sheet_id"], params(request))
        return download(content, "text/csv; charset=utf-8", name)

    async def sheet_commits(self, request: web.Request) -> web.Response:
        sheet = self.data.sheet(request.match_info["sheet_id"])
        return answer(self.data.list_commits([sheet.id], params(request)))
