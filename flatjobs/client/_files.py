"""``client.files``, ``client.spaces`` and ``client.documents``."""

from __future__ import annotations

import contextlib
import mimetypes
import os
from collections.abc import AsyncIterable, AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Final, Literal

from flatjobs.models import (
    Action,
    Document,
    DocumentConfig,
    File,
    FileMode,
    FileStatus,
    Space,
    SpaceConfig,
    to_wire,
)

from ._transport import Caller, Endpoint, Form, Page, data_list, data_object, page_of, success

__all__ = ["DocumentsAPI", "FilesAPI", "SpacesAPI"]

FILES: Final = Endpoint("GET", "/files", "files.list")
UPLOAD: Final = Endpoint("POST", "/files", "files.upload")
FILE: Final = Endpoint("GET", "/files/{}", "files.get")
UPDATE_FILE: Final = Endpoint("PATCH", "/files/{}", "files.update")
DELETE_FILE: Final = Endpoint("DELETE", "/files/{}", "files.delete")
DOWNLOAD_FILE: Final = Endpoint("GET", "/files/{}/download", "files.download")
SPACES: Final = Endpoint("GET", "/spaces", "spaces.list")
SPACE: Final = Endpoint("GET", "/spaces/{}", "spaces.get")
UPDATE_SPACE: Final = Endpoint("PATCH", "/spaces/{}", "spaces.update")
DOCUMENTS: Final = Endpoint("GET", "/spaces/{}/documents", "documents.list")
CREATE_DOCUMENT: Final = Endpoint("POST", "/spaces/{}/documents", "documents.create")
DOCUMENT: Final = Endpoint("GET", "/spaces/{}/documents/{}", "documents.get")
UPDATE_DOCUMENT: Final = Endpoint("PATCH", "/spaces/{}/documents/{}", "documents.update")

_file = data_object(File)
_files = page_of(File)
_space = data_object(Space)
_spaces = page_of(Space)
_document = data_object(Document)
_documents = data_list(Document)

Content = str | os.PathLike[str] | bytes | AsyncIterable[bytes]
"""What a file is uploaded from: a path, bytes, or an async stream of bytes."""


class FilesAPI:
    """``client.files``: upload, download, read and list a space's files."""

    def __init__(self, client: Caller) -> None:
        self._client = client

    async def upload(
        self,
        content: Content,
        *,
        space_id: str,
        name: str | None = None,
        mode: Literal["import", "export"] = "import",
        content_type: str | None = None,
        environment_id: str | None = None,
        actions: Sequence[Action | Mapping[str, Any]] | None = None,
    ) -> File:
        """``POST /files`` (multipart): a file from a path, bytes or an async stream of
        bytes. ``mode="export"`` makes an export file, as an export job's is. Retried like
        any call when it can be sent again (a path or bytes); a stream is sent once.

        Raises:
            ValueError: bytes or a stream with no ``name`` to give the file.
        """
        if isinstance(content, str):
            content = Path(content)
        if name is None:
            if not isinstance(content, os.PathLike):
                raise ValueError("name the file: name='export.csv'")
            name = Path(content).name
        if isinstance(content, os.PathLike):
            content = Path(content)
        kind = content_type or mimetypes.guess_type(name)[0] or "application/octet-stream"
        form = Form(
            {
                "spaceId": space_id,
                "environmentId": self._client.require_environment(environment_id),
                "mode": mode,
            },
            (name, content, kind),
            json_parts=[a if isinstance(a, Mapping) else to_wire(a) for a in actions or []],
        )
        return await self._client.call(UPLOAD, form=form, decode=_file)

    @contextlib.asynccontextmanager
    async def download(self, file_id: str) -> AsyncIterator[AsyncIterator[bytes]]:
        """A file's bytes, streamed: ``async with client.files.download(id) as chunks``."""
        async with self._client.stream(DOWNLOAD_FILE, file_id) as chunks:
            yield chunks

    async def get(self, file_id: str) -> File:
        """``GET /files/{id}``."""
        return await self._client.call(FILE, file_id, decode=_file)

    async def list(
        self,
        *,
        space_id: str | None = None,
        mode: Literal["import", "export"] | None = None,
        page_size: int | None = None,
        page_number: int | None = None,
    ) -> Page[File]:
        """One page of a space's files (the platform's default page size is 20)."""
        params = {
            "spaceId": space_id,
            "mode": mode,
            "pageSize": page_size,
            "pageNumber": page_number,
        }
        return await self._client.call(FILES, params=params, decode=_files)

    async def update(
        self,
        file_id: str,
        *,
        name: str | None = None,
        mode: FileMode | str | None = None,
        status: FileStatus | str | None = None,
        workbook_id: str | None = None,
        actions: Sequence[Action | Mapping[str, Any]] | None = None,
    ) -> File:
        """``PATCH /files/{id}``: rename the file, change its mode, status or actions, or
        link it to a workbook; what is not given stays as it is. A status, mode or action
        read from the platform is written back as read, values flatjobs does not know
        included."""
        given = {"workbookId": workbook_id, "name": name, "mode": mode, "status": status}
        body: dict[str, Any] = {k: str(v) for k, v in given.items() if v is not None}
        if actions is not None:
            body["actions"] = [dict(a) if isinstance(a, Mapping) else to_wire(a) for a in actions]
        return await self._client.call(UPDATE_FILE, file_id, body=body, decode=_file)

    async def delete(self, file_id: str) -> None:
        """``DELETE /files/{id}``."""
        await self._client.call(DELETE_FILE, file_id, decode=success)


class SpacesAPI:
    """``client.spaces``: an environment's spaces."""

    def __init__(self, client: Caller) -> None:
        self._client = client

    async def list(
        self,
        *,
        environment_id: str | None = None,
        page_size: int | None = None,
        page_number: int | None = None,
    ) -> Page[Space]:
        """One page of the environment's spaces (the platform's default page size is 10)."""
        params = {
            "environmentId": environment_id or self._client.environment_id,
            "pageSize": page_size,
            "pageNumber": page_number,
        }
        return await self._client.call(SPACES, params=params, decode=_spaces)

    async def get(self, space_id: str) -> Space:
        """``GET /spaces/{id}``."""
        return await self._client.call(SPACE, space_id, decode=_space)

    async def update(self, space_id: str, config: SpaceConfig) -> Space:
        """``PATCH /spaces/{id}`` with a :class:`SpaceConfig` (metadata, name...)."""
        return await self._client.call(UPDATE_SPACE, space_id, body=to_wire(config), decode=_space)


class DocumentsAPI:
    """``client.documents``: a space's documents."""

    def __init__(self, client: Caller) -> None:
        self._client = client

    async def list(self, space_id: str) -> list[Document]:
        """The documents of a space."""
        return await self._client.call(DOCUMENTS, space_id, decode=_documents)

    async def get(self, space_id: str, document_id: str) -> Document:
        """One document of a space."""
        return await self._client.call(DOCUMENT, space_id, document_id, decode=_document)

    async def create(self, space_id: str, config: DocumentConfig) -> Document:
        """Add a document to a space."""
        body = to_wire(config)
        return await self._client.call(CREATE_DOCUMENT, space_id, body=body, decode=_document)

    async def update(self, space_id: str, document_id: str, config: DocumentConfig) -> Document:
        """Change a document."""
        body = to_wire(config)
        return await self._client.call(
            UPDATE_DOCUMENT, space_id, document_id, body=body, decode=_document
        )
