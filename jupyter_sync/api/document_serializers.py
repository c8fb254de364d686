"""What the documents and collaboration-session endpoints accept and answer (and so what the
OpenAPI schema says)."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from jupyter_sync.collaboration.document_records import InvalidDocumentPath, normalize_path
from jupyter_sync.schema import DOCUMENT_FORMATS, DOCUMENT_STATUSES
from tables.api.serializers import QuerySerializer, StrictCharField

DOCUMENT_TYPES = tuple(DOCUMENT_FORMATS)
FORMATS = tuple(sorted(set(DOCUMENT_FORMATS.values())))


class PathField(StrictCharField):
    """A file's path under the Jupyter Server's root, normalized (no ``..``, no leading ``/``)."""

    def __init__(self, **kwargs: Any):
        kwargs.setdefault("max_length", 1024)  # URL-encoded, it still fits a request line
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> str:
        text = super().to_internal_value(data)
        try:
            return normalize_path(text)
        except InvalidDocumentPath as error:
            raise serializers.ValidationError(str(error)) from None


class OpenSerializer(serializers.Serializer):
    path = PathField(help_text="The file, relative to the Jupyter Server's root.")
    type = serializers.ChoiceField(
        choices=DOCUMENT_TYPES,
        required=False,
        help_text="notebook or file; by default notebook for .ipynb, file otherwise.",
    )
    format = serializers.ChoiceField(
        choices=FORMATS,
        required=False,
        help_text="The contents API format: json for notebooks, text for files (the default).",
    )

    def validate(self, data: dict[str, Any]) -> dict[str, Any]:
        kind = data.get("type") or ("notebook" if data["path"].endswith(".ipynb") else "file")
        data["type"] = kind
        if data.get("format", DOCUMENT_FORMATS[kind]) != DOCUMENT_FORMATS[kind]:
            raise serializers.ValidationError(
                {"format": [f"a {kind} is loaded and saved as {DOCUMENT_FORMATS[kind]}"]}
            )
        data["format"] = DOCUMENT_FORMATS[kind]
        return data


class RenameSerializer(serializers.Serializer):
    new_path = PathField(help_text="Where the file goes, relative to the root.")


class DocumentListQuerySerializer(QuerySerializer):
    path = PathField(required=False, help_text="Only the documents of this path.")


class WebSocketsSerializer(serializers.Serializer):
    yjs = serializers.CharField(help_text="y-websocket protocol (stock Yjs providers).")
    datastore = serializers.CharField(help_text="The JSON datastore protocol.")
    collaboration = serializers.CharField(
        help_text="jupyter-collaboration's room (JupyterLab's collaboration front end)."
    )


class DocumentSerializer(serializers.Serializer):
    id = serializers.CharField(source="record_id", help_text="The stable document id.")
    path = serializers.CharField()
    type = serializers.CharField()
    format = serializers.CharField()
    status = serializers.ChoiceField(choices=("", *DOCUMENT_STATUSES))
    request = serializers.CharField(help_text="What the supernode is asked to do (empty: none).")
    error = serializers.CharField()
    conflict = serializers.JSONField(allow_null=True)
    last_saved = serializers.DateTimeField(allow_null=True)
    last_modified = serializers.DateTimeField(allow_null=True)
    datastore_name = serializers.CharField(help_text="The document's datastore (once open).")
    url = serializers.CharField(help_text="This document's URL.")
    websockets = WebSocketsSerializer(
        allow_null=True, help_text="Where to edit it, once open (null before)."
    )
    session_id = serializers.CharField(
        allow_null=True,
        help_text="jupyter-collaboration's sessionId for this document (null before open).",
    )


class DocumentListSerializer(serializers.Serializer):
    results = DocumentSerializer(many=True)


class CollaborationSessionRequestSerializer(serializers.Serializer):
    format = serializers.ChoiceField(choices=FORMATS)
    type = serializers.ChoiceField(choices=DOCUMENT_TYPES)

    def validate(self, data: dict[str, Any]) -> dict[str, Any]:
        expected = DOCUMENT_FORMATS[data["type"]]
        if data["format"] != expected:
            raise serializers.ValidationError(
                {"format": [f"a {data['type']} is loaded and saved as {expected}"]}
            )
        return data


class CollaborationSessionSerializer(serializers.Serializer):
    """jupyter-collaboration's document session."""

    format = serializers.CharField()
    type = serializers.CharField()
    fileId = serializers.CharField(help_text="The stable document id (the room's last part).")
    sessionId = serializers.CharField(
        help_text="Names the document's datastore; a client holding state from another one "
        "must drop it (the room refuses it with 4409)."
    )


class TimelineQuerySerializer(QuerySerializer, CollaborationSessionRequestSerializer):
    """``?format=&type=`` of the timeline (the front end sends ``&&`` between them)."""


class TimelineSerializer(serializers.Serializer):
    """jupyter-collaboration's timeline, with each point's serial and author added."""

    roomId = serializers.CharField(help_text="The document's room, <format>:<type>:<fileId>.")
    forkRoom = serializers.CharField(
        help_text="The fork room (timeline:<id>): join it in /api/collaboration/room/ to see the "
        "document at the slider's point; PUT undo_redo moves it."
    )
    sessionId = serializers.CharField(help_text="As the session's: pass it to the fork room.")
    timestamps = serializers.ListField(
        child=serializers.FloatField(),
        help_text="Each point's time (seconds since the epoch), oldest first; the last point is "
        "the document as it is. At most 1000 points: a longer history is sampled evenly.",
    )
    serials = serializers.ListField(
        child=serializers.IntegerField(), help_text="Each point's transaction serial."
    )
    authors = serializers.ListField(
        child=serializers.CharField(allow_null=True),
        help_text="Who made each point's transaction (display name, else username; null: nobody "
        "recorded).",
    )


class UndoRedoQuerySerializer(QuerySerializer):
    action = serializers.ChoiceField(
        choices=("undo", "redo", "restore"),
        help_text="undo/redo: move the fork's view that many points back/forward; restore: make "
        "the document what the view shows.",
    )
    steps = serializers.IntegerField(
        min_value=0, max_value=2**31 - 1, help_text="Points to move (ignored by restore)."
    )
    forkRoom = StrictCharField(max_length=200, help_text="The fork room the timeline answered.")


class UndoRedoSerializer(serializers.Serializer):
    code = serializers.IntegerField(help_text="200, as jupyter-collaboration's body says.")
    status = serializers.CharField(help_text="undone, redone or a sentence (restore).")
    position = serializers.IntegerField(help_text="The slider's point shown now (0: oldest).")
    serial = serializers.IntegerField(help_text="Its transaction's serial.")
    restoredBy = serializers.IntegerField(
        required=False,
        allow_null=True,
        help_text="restore: the serial of the new transaction (null: already equal).",
    )


class ForkRequestSerializer(serializers.Serializer):
    """jupyter-collaboration's ``createFork`` body."""

    title = StrictCharField(
        required=False, allow_blank=True, allow_null=True, max_length=1000, default=""
    )
    description = StrictCharField(
        required=False, allow_blank=True, allow_null=True, max_length=10_000, default=""
    )
    synchronize = serializers.BooleanField(
        required=False,
        default=False,
        help_text="Accepted, not provided: the fork keeps the document as it was at the branch.",
    )


class ForkInfoSerializer(serializers.Serializer):
    root_roomid = serializers.CharField(help_text="The forked document's room.")
    synchronize = serializers.BooleanField(help_text="Always false here.")
    title = serializers.CharField(allow_blank=True)
    description = serializers.CharField(allow_blank=True)
    serial = serializers.IntegerField(help_text="The document's serial the fork branched at.")
    createdBy = serializers.CharField(allow_null=True, help_text="Who made it (username).")


class ForkCreatedSerializer(serializers.Serializer):
    sessionId = serializers.CharField(help_text="Pass it to the fork's room (?sessionId=).")
    fork_roomid = serializers.CharField(
        help_text="The fork's id: join /api/collaboration/room/<it>; DELETE fork/<it> ends it."
    )
    fork_info = ForkInfoSerializer()


class ForkDeleteQuerySerializer(QuerySerializer):
    merge = serializers.ChoiceField(
        choices=("true", "false"),
        help_text="true: write the fork's changes on the document first; false: drop them.",
    )


class ForkDeletedSerializer(serializers.Serializer):
    fork_roomid = serializers.CharField()
    fork_info = ForkInfoSerializer()
    merged = serializers.BooleanField()
    serial = serializers.IntegerField(
        allow_null=True,
        help_text="The merge's transaction on the document (null: discarded, or nothing to merge).",
    )
