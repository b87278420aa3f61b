"""Files: uploaded (or seeded) bytes in a space, and the ``/files`` endpoints.

The emulator extracts nothing from a file itself: an uploaded import file stays ``partial``
until a listener (an extractor: Flatfile's, or yours) extracts it, on ``file:created``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from flatjobs.emulator import _checks as ck
from flatjobs.emulator._checks import Check, Params
from flatjobs.emulator._errors import EmulatorError

from ._entities import File, now
from ._store import Store, not_found

__all__ = ["FILES_PAGE_SIZE", "Files"]

FILES_PAGE_SIZE = 20
FILE_STATUSES = ("partial", "analyzing", "analyzed", "complete", "archived", "purged", "failed")
FILE_MODES = ("import", "export")
_FILE_UPDATE: dict[str, Check] = {
    "workbookId": ck.string,
    "sheetId": ck.string,
    "name": ck.string,
    "description": ck.string,
    "mode": ck.string,
    "status": ck.string,
    "actions": ck.action_list,
}


class Files:
    """``/files``: upload, list, read, change, download and delete files."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def upload(
        self,
        fields: Mapping[str, str],
        name: str,
        content: bytes,
        content_type: str | None,
        actions: Sequence[Any] = (),
        *,
        id: str | None = None,
    ) -> dict[str, Any]:
        """``POST /files``: ``fields`` are the form's text parts (``spaceId`` and
        ``environmentId`` required, ``mode`` import or export, ``origin``), then the file,
        and ``actions`` parsed from their JSON parts.

        An import file is ``partial`` (uploaded, not extracted: the emulator extracts
        nothing); an export file is ``complete``. ``encoding`` is ``utf-8`` when the bytes
        are UTF-8 text, else ``binary``."""
        store = self.store
        for key in ("spaceId", "environmentId"):
            if not fields.get(key):
                raise EmulatorError(400, f"{key} is required", key=key)
        store.check_environment(fields)
        space = store.spaces.get(fields["spaceId"])
        if space is None:
            raise not_found("space", fields["spaceId"], "spaceId")
        mode = fields.get("mode") or "import"
        if mode not in FILE_MODES:
            raise EmulatorError(400, f"mode must be import or export, got {mode!r:.40}", key="mode")
        checked_actions = ck.action_list(list(actions), "actions") if actions else None
        try:
            content.decode()
            encoding = "utf-8"
        except UnicodeDecodeError:
            encoding = "binary"
        stem, dot, ext = name.rpartition(".")
        stored: dict[str, Any] = {
            "name": name,
            "ext": ext if dot and stem else "",
            "mimetype": content_type or "application/octet-stream",
            "encoding": encoding,
            "status": "partial" if mode == "import" else "complete",
            "mode": mode,
        }
        if fields.get("origin"):
            stored["origin"] = fields["origin"]
        if checked_actions:
            stored["actions"] = checked_actions
        file = File(store.new_id("us_fl_", id), space, stored, content)
        store.files[file.id] = file
        store.emit("file:created", "file", file.context(), {"status": stored["status"]})
        return file.wire()

    def list(self, params: Params) -> list[dict[str, Any]]:
        """``GET /files``: in ``spaceId`` (every space, without it), of ``mode`` (which
        defaults to ``import``, as documented), oldest first (paged by the caller)."""
        mode = ck.one(params, "mode") or "import"
        if mode not in FILE_MODES:
            raise EmulatorError(400, f"mode must be import or export, got {mode!r:.40}", key="mode")
        space_id = ck.one(params, "spaceId")
        return [
            f.wire()
            for f in self.store.files.values()
            if f.fields["mode"] == mode and (space_id is None or f.space.id == space_id)
        ]

    def get(self, file_id: str) -> dict[str, Any]:
        """``GET /files/{id}``."""
        return self.store.file(file_id).wire()

    def update(self, file_id: str, body: Any) -> dict[str, Any]:
        """``PATCH /files/{id}`` (``workbookId``, ``sheetId``, ``name``, ``description``,
        ``mode``, ``status``, ``actions``). A new ``name`` keeps the file's ``ext``: the
        extension is what the file was uploaded as (what an extractor reads), not part of
        its display name."""
        store = self.store
        file = store.file(file_id)
        fields = ck.read(body, _FILE_UPDATE)
        if "mode" in fields and fields["mode"] not in FILE_MODES:
            raise EmulatorError(400, "mode must be import or export", key="mode")
        if "status" in fields and fields["status"] not in FILE_STATUSES:
            raise EmulatorError(
                400, f"status must be one of {', '.join(FILE_STATUSES)}", key="status"
            )
        if "workbookId" in fields and fields["workbookId"] not in store.workbooks:
            raise not_found("workbook", fields["workbookId"], "workbookId")
        if "sheetId" in fields and fields["sheetId"] not in store.sheets:
            raise not_found("sheet", fields["sheetId"], "sheetId")
        file.fields.update(fields)
        file.updated_at = now()
        store.emit("file:updated", "file", file.context(), {"status": file.fields["status"]})
        return file.wire()

    def delete(self, file_id: str) -> None:
        """``DELETE /files/{id}``."""
        store = self.store
        file = store.file(file_id)
        del store.files[file_id]
        store.emit("file:deleted", "file", file.context(), {})

    def content(self, file_id: str) -> tuple[bytes, str, str]:
        """``GET /files/{id}/download``: the bytes, their content type and the file name."""
        file = self.store.file(file_id)
        return file.content, str(file.fields["mimetype"]), str(file.fields["name"])
