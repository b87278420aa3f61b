"""``/spaces`` and a space's ``/documents``."""

from __future__ import annotations

from aiohttp import web

from flatjobs.emulator._data import SPACES_PAGE_SIZE
from flatjobs.emulator._http import answer, json_body, page, params

from ._resource import Resource

__all__ = ["DocumentRoutes", "SpaceRoutes"]


class SpaceRoutes(Resource):
    """``/spaces``."""

    routes = (
        ("GET", "/v1/spaces", "spaces.list", "list_spaces"),
        ("POST", "/v1/spaces", "spaces.create", "create_space"),
        ("GET", "/v1/spaces/{space_id}", "spaces.get", "get_space"),
        ("PATCH", "/v1/spaces/{space_id}", "spaces.update", "update_space"),
        ("DELETE", "/v1/spaces/{space_id}", "spaces.delete", "delete_space"),
    )

    async def list_spaces(self, request: web.Request) -> web.Response:
        return page(self.data.list_spaces(params(request)), request.query, SPACES_PAGE_SIZE)

    async def create_space(self, request: web.Request) -> web.Response:
        return answer(self.data.create_space(await json_body(request)))

    async def get_space(self, request: web.Request) -> web.Response:
        return answer(self.data.get_space(request.match_info["space_id"]))

    async def update_space(self, request: web.Request) -> web.Response:
        space_id = request.match_info["space_id"]
        return answer(self.data.update_space(space_id, await json_body(request)))

    async def delete_space(self, request: web.Request) -> web.Response:
        self.data.delete_space(request.match_info["space_id"])
        return answer({"success": True})


class DocumentRoutes(Resource):
    """``/spaces/{id}/documents``."""

    routes = (
        ("GET", "/v1/spaces/{space_id}/documents", "documents.list", "list_documents"),
        ("POST", "/v1/spaces/{space_id}/documents", "documents.create", "create_document"),
        ("GET", "/v1/spaces/{space_id}/documents/{document_id}", "documents.get", "get_document"),
        ("PATCH", "/v1/spaces/{space_id}/documents/{document_id}", "documents.update", "update_document"),
        ("DELETE", "/v1/spaces/{space_id}/documents/{document_id}", "documents.delete", "delete_document"),
    )  # fmt: skip

    async def list_documents(self, request: web.Request) -> web.Response:
        return answer(self.data.list_documents(request.match_info["space_id"]))

    async def create_document(self, request: web.Request) -> web.Response:
        space_id = request.match_info["space_id"]
        return answer(self.data.create_document(space_id, await json_body(request)))

    async def get_document(self, request: web.Request) -> web.Response:
        ids = request.match_info
        return answer(self.data.get_document(ids["space_id"], ids["document_id"]))

    async def update_document(self, request: web.Request) -> web.Response:
        ids = request.match_info
        body = await json_body(request)
        return answer(self.data.update_document(ids["space_id"], ids["document_id"], body))

    async def delete_document(self, request: web.Request) -> web.Response:
        ids = request.match_info
        self.data.delete_document(ids["space_id"], ids["document_id"])
        return answer({"success": True})
