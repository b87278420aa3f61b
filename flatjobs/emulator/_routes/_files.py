"""``/files``: uploads (multipart forms), their fields, their bytes; the header detection
extractors ask for (``/files/detect-header``); and ``/entitlements``."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from flatjobs.emulator._data import FILES_PAGE_SIZE
from flatjobs.emulator._errors import EmulatorError
from flatjobs.emulator._http import (
    answer,
    body_bytes,
    download,
    form,
    json_body,
    page,
    params,
    parse_json,
)

from ._resource import Resource

__all__ = ["EntitlementRoutes", "FileRoutes"]


class FileRoutes(Resource):
    """``/files``."""

    routes = (
        ("GET", "/v1/files", "files.list", "list_files"),
        ("POST", "/v1/files", "files.upload", "upload_file"),
        ("POST", "/v1/files/detect-header", "files.detect_header", "detect_header"),
        ("GET", "/v1/files/{file_id}", "files.get", "get_file"),
        ("PATCH", "/v1/files/{file_id}", "files.update", "update_file"),
        ("DELETE", "/v1/files/{file_id}", "files.delete", "delete_file"),
        ("GET", "/v1/files/{file_id}/download", "files.download", "download_file"),
    )

    async def list_files(self, request: web.Request) -> web.Response:
        return page(self.data.list_files(params(request)), request.query, FILES_PAGE_SIZE)

    async def upload_file(self, request: web.Request) -> web.Response:
        fields: dict[str, str] = {}
        actions: list[Any] = []
        upload: tuple[str, bytes, str | None] | None = None
        for name, filename, content_type, content in form(
            request.headers.get("Content-Type", ""), await body_bytes(request)
        ):
            if name == "file":
                upload = (filename or "upload", content, content_type)
            elif name == "actions":
                actions.append(parse_json(content))  # one JSON part per action
            else:
                fields[name] = content.decode("utf-8", "replace")
        if upload is None:
            raise EmulatorError(400, "the form has no `file` part", key="file")
        return answer(self.data.upload_file(fields, *upload, actions))

    async def get_file(self, request: web.Request) -> web.Response:
        return answer(self.data.get_file(request.match_info["file_id"]))

    async def update_file(self, request: web.Request) -> web.Response:
        file_id = request.match_info["file_id"]
        return answer(self.data.update_file(file_id, await json_body(request)))

    async def delete_file(self, request: web.Request) -> web.Response:
        self.data.delete_file(request.match_info["file_id"])
        return answer({"success": True})

    async def download_file(self, request: web.Request) -> web.Response:
        return download(*self.data.file_content(request.match_info["file_id"]))

    async def detect_header(self, request: web.Request) -> web.Response:
        return answer(self.data.detect_header(await json_body(request)))


class EntitlementRoutes(Resource):
    """``/entitlements``: what a resource (a space) is entitled to."""

    routes = (("GET", "/v1/entitlements", "entitlements.list", "list_entitlements"),)

    async def list_entitlements(self, request: web.Request) -> web.Response:
        return answer(self.data.list_entitlements(params(request)))
