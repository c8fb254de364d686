"""Document ids as clients give them: the bare id of a ``documents`` record, or the
jupyter-collaboration room id ``<format>:<type>:<id>`` (``json:notebook:<fileId>``), which is what
JupyterLab's server-side cell executor sends as ``document_id``.

One rule everywhere a document id is taken (the execution endpoints, ``/api/documents/<id>``, the
collaboration room, the supernode's cell queue): a value without ``:`` is a bare id; a value with
one is a room id, ``<format>:<type>:<id>`` with a format and type this server serves
(``DOCUMENT_FORMATS``) and a non-empty id (which may itself hold ``:``, so every record id can be
named as a room id). Pure: no Django, so the web side and the supernode share it.
"""

from __future__ import annotations

from dataclasses import dataclass

from jupyter_sync.schema import DOCUMENT_FORMATS


class DocumentIdError(ValueError):
    """A document id that cannot be used; ``code`` says why (the REST error's code)."""

    code = "bad-document-id"


class BadDocumentId(DocumentIdError):
    """Neither a bare id nor ``<format>:<type>:<id>`` with a supported format and type."""


class WrongType(DocumentIdError):
    """A room id whose format or type is not the document's."""

    code = "wrong-type"


class NotANotebook(DocumentIdError):
    """A cell execution asked of a document that is not a notebook."""

    code = "not-a-notebook"


def supported_rooms() -> str:
    return ", ".join(f"{file_format}:{kind}" for kind, file_format in DOCUMENT_FORMATS.items())


@dataclass(frozen=True)
class DocumentId:
    """A parsed document id: the record id, and the format and type a room id named."""

    id: str
    format: str | None = None
    type: str | None = None

    @property
    def is_room(self) -> bool:
        return self.type is not None

    def check_type(self, record_type: str | None) -> None:
        """``WrongType`` when this is a room id and the record is of another type (a record
        whose type is not known yet, one still being opened, is not judged)."""
        if not self.is_room or not record_type or record_type == self.type:
            return
        raise WrongType(
            f"document {self.id!r} is a {record_type} "
            f"({DOCUMENT_FORMATS.get(record_type, '?')}:{record_type}), "
            f"not {self.format}:{self.type}"
        )


def parse_document_id(value: str) -> DocumentId:
    """``value`` → its parts; ``BadDocumentId`` for anything neither form allows."""
    parts = value.split(":", 2) if isinstance(value, str) and value else []
    if len(parts) == 1:
        return DocumentId(value)
    if len(parts) != 3 or not parts[2]:
        raise BadDocumentId(f"a document id is <id> or <format>:<type>:<id>, not {value!r}")
    file_format, kind, record_id = parts
    if DOCUMENT_FORMATS.get(kind) != file_format:
        raise BadDocumentId(
            f"unsupported document {file_format}:{kind} in {value!r} "
            f"(supported: {supported_rooms()})"
        )
    return DocumentId(record_id, file_format, kind)


def parse_room_id(value: str) -> DocumentId:
    """A room id only (the collaboration room's URL): ``BadDocumentId`` for a bare id too."""
    parsed = parse_document_id(value)
    if not parsed.is_room:
        raise BadDocumentId(f"a room is <format>:<type>:<fileId>, not {value!r}")
    return parsed


def room_id(document_type: str, record_id: str) -> str:
    """The room id of a document (what jupyter-collaboration's front end joins)."""
    return f"{DOCUMENT_FORMATS[document_type]}:{document_type}:{record_id}"


def notebook_only(record_type: str | None, record_id: str) -> None:
    """``NotANotebook`` unless the record is a notebook (or its type is not known yet)."""
    if record_type and record_type != "notebook":
        raise NotANotebook(f"document {record_id!r} is a {record_type}, not a notebook")
