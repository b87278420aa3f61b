"""Spaces and their documents: the ``/spaces`` endpoints.

A space holds workbooks, files and documents: deleting it deletes them, each with its
event, before its own ``space:deleted``.
"""

from __future__ import annotations

from typing import Any

from flatjobs.emulator import _checks as ck
from flatjobs.emulator._checks import Check, Params

from ._entities import Document, Space, now
from ._files import Files
from ._store import Store, not_found
from ._workbooks import Workbooks

__all__ = ["DOCUMENT", "SPACE", "SPACES_PAGE_SIZE", "Documents", "Spaces"]

SPACES_PAGE_SIZE = 10
SPACE: dict[str, Check] = {
    "name": ck.string,
    "displayOrder": ck.integer,
    "guestAuthentication": ck.string_list,
    "spaceConfigId": ck.string,
    "environmentId": ck.string,
    "primaryWorkbookId": ck.string,
    "metadata": ck.json_object,
    "settings": ck.json_object,
    "actions": ck.action_list,
    "access": ck.string_list,
    "autoConfigure": ck.boolean,
    "namespace": ck.string,
    "labels": ck.string_list,
    "translationsPath": ck.string,
    "languageOverride": ck.string,
    "appId": ck.string,
    "isAppTemplate": ck.boolean,
}
"""A SpaceConfig (every field optional)."""
DOCUMENT: dict[str, Check] = {
    "title": ck.string,
    "body": ck.string,
    "treatments": ck.string_list,
    "actions": ck.action_list,
}
"""A DocumentConfig."""


class Spaces:
    """``/spaces``: made, listed, changed, deleted with everything they hold."""

    def __init__(
        self, store: Store, workbooks: Workbooks, files: Files, documents: Documents
    ) -> None:
        self.store = store
        self.workbooks = workbooks
        self.files = files
        self.documents = documents

    def wire(self, space: Space) -> dict[str, Any]:
        """A space as the API answers it."""
        store = self.store
        out = {
            "id": space.id,
            "environmentId": space.environment_id,
            "guestAuthentication": ["magic_link"],
            **space.fields,
            "workbooksCount": sum(w.space is space for w in store.workbooks.values()),
            "filesCount": sum(f.space is space for f in store.files.values()),
            "createdAt": space.created_at,
            "updatedAt": space.updated_at,
        }
        out.setdefault("name", "")
        return out

    def create(self, body: Any, *, id: str | None = None) -> dict[str, Any]:
        """``POST /spaces`` (SpaceConfig; every field optional).

        With ``autoConfigure: true`` the platform configures the new space: it creates the
        job ``space:configure`` (type ``space``, operation ``configure``, the space its
        source), ready at once, so ``job:created`` and ``job:ready`` (context ``spaceId``)
        follow ``space:created``; a listener (Flatfile's ``configureSpace``, say) builds
        the space and completes it. A space made by a seed is as it already was: no job."""
        store = self.store
        fields = ck.read(body if body is not None else {}, SPACE)
        store.check_environment(fields)
        fields.pop("environmentId", None)
        space = Space(store.new_id("us_sp_", id), store.state.environment_id, fields)
        store.spaces[space.id] = space
        store.emit("space:created", "space", space.context(), {})
        if fields.get("autoConfigure") and not store.silent:
            store.state.create_job(
                {
                    "type": "space",
                    "operation": "configure",
                    "source": space.id,
                    "trigger": "immediate",
                }
            )
        return self.wire(space)

    def get(self, space_id: str) -> dict[str, Any]:
        """``GET /spaces/{id}``."""
        return self.wire(self.store.space(space_id))

    def update(self, space_id: str, body: Any) -> dict[str, Any]:
        """``PATCH /spaces/{id}``: the fields given replace those held."""
        store = self.store
        space = store.space(space_id)
        fields = ck.read(body, SPACE)
        store.check_environment(fields)
        fields.pop("environmentId", None)
        space.fields.update(fields)
        space.updated_at = now()
        store.emit("space:updated", "space", space.context(), {})
        return self.wire(space)

    def delete(self, space_id: str) -> None:
        """``DELETE /spaces/{id}``, with its workbooks, files and documents."""
        store = self.store
        space = store.space(space_id)
        for workbook in [w for w in store.workbooks.values() if w.space is space]:
            self.workbooks.delete(workbook.id)
        for file in [f for f in store.files.values() if f.space is space]:
            self.files.delete(file.id)
        for document in [d for d in store.documents.values() if d.space is space]:
            self.documents.delete(space.id, document.id)
        del store.spaces[space_id]
        store.emit("space:deleted", "space", space.context(), {})

    def list(self, params: Params) -> list[dict[str, Any]]:
        """``GET /spaces``: this environment's spaces, oldest first (paged by the caller)."""
        env = ck.one(params, "environmentId")
        if env is not None and env != self.store.state.environment_id:
            return []
        return [self.wire(s) for s in self.store.spaces.values()]


class Documents:
    """``/spaces/{id}/documents``: a space's documents."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def find(self, space_id: str, document_id: str) -> Document:
        """The document of that space, or a 404."""
        space = self.store.space(space_id)
        found = self.store.documents.get(document_id)
        if found is None or found.space is not space:
            raise not_found("document", document_id, "documentId")
        return found

    def create(self, space_id: str, body: Any, *, id: str | None = None) -> dict[str, Any]:
        """``POST /spaces/{id}/documents`` (DocumentConfig: ``title`` and ``body`` required)."""
        store = self.store
        space = store.space(space_id)
        fields = ck.read(body, DOCUMENT, required=("title", "body"))
        document = Document(store.new_id("us_dc_", id), space, fields)
        store.documents[document.id] = document
        store.emit("document:created", "document", document.context(), {})
        return document.wire()

    def get(self, space_id: str, document_id: str) -> dict[str, Any]:
        """``GET /spaces/{id}/documents/{documentId}``."""
        return self.find(space_id, document_id).wire()

    def update(self, space_id: str, document_id: str, body: Any) -> dict[str, Any]:
        """``PATCH /spaces/{id}/documents/{documentId}``: the fields given replace those held."""
        document = self.find(space_id, document_id)
        document.fields.update(ck.read(body, DOCUMENT))
        document.updated_at = now()
        self.store.emit("document:updated", "document", document.context(), {})
        return document.wire()

    def delete(self, space_id: str, document_id: str) -> None:
        """``DELETE /spaces/{id}/documents/{documentId}``."""
        document = self.find(space_id, document_id)
        del self.store.documents[document_id]
        self.store.emit("document:deleted", "document", document.context(), {})

    def list(self, space_id: str) -> list[dict[str, Any]]:
        """``GET /spaces/{id}/documents``."""
        space = self.store.space(space_id)
        return [d.wire() for d in self.store.documents.values() if d.space is space]
