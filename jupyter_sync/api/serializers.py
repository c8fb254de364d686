"""The bodies of the Jupyter endpoints, in Jupyter Server's shapes (so its clients port with
little work); request bodies are validated here (400 with a message per field)."""

from __future__ import annotations

from typing import Any

import nbformat
from rest_framework import serializers

from jupyter_sync.paths import BadPath, checked_path
from tables.api.serializers import ErrorSerializer, QuerySerializer, StrictCharField

NAME = {"max_length": 200}
PATH = {"max_length": 4096, "allow_blank": True}


class StrictObject(serializers.Serializer):
    """Unknown keys are refused: a misspelt field must not be ignored silently."""

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({key: ["Unknown field."] for key in unknown})
        return super().to_internal_value(data)


class JupyterPath(StrictCharField):
    """A path under the Jupyter Server's root, checked (``jupyter_sync.paths``): a ``..`` step,
    NUL or a lone surrogate is a 400 naming the field. ``root``: ``""`` (the root) is allowed."""

    def __init__(self, *, root: bool = False, **kwargs: Any):
        kwargs.setdefault("max_length", 4096)
        if root:
            kwargs.setdefault("allow_blank", True)
        self.allow_root = root
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> str:
        text = super().to_internal_value(data)
        try:
            return checked_path(text, root=self.allow_root)
        except BadPath as error:
            raise serializers.ValidationError(str(error)) from None


class JupyterErrorSerializer(ErrorSerializer):
    message = serializers.CharField(help_text="The same as detail, where Jupyter clients read it.")


# --- Status and kernelspecs -----------------------------------------------------------------


class StatusSerializer(serializers.Serializer):
    started = serializers.CharField(allow_null=True)
    last_activity = serializers.CharField(allow_null=True)
    connections = serializers.IntegerField(allow_null=True)
    kernels = serializers.IntegerField(allow_null=True)
    connected = serializers.BooleanField(
        allow_null=True, help_text="Whether the supernode reaches the Jupyter Server."
    )
    supernode = serializers.BooleanField(help_text="Whether a supernode holds the lease.")
    stale_since = serializers.CharField(
        allow_null=True,
        help_text="With no supernode: when the last one stopped (the tables say what Jupyter was "
        "then; kernels' execution_state is unknown). Null while one runs, or if none ever ran.",
    )


class KernelspecSerializer(serializers.Serializer):
    name = serializers.CharField()
    spec = serializers.DictField()
    resources = serializers.DictField()


class KernelspecsSerializer(serializers.Serializer):
    default = serializers.CharField(allow_null=True)
    kernelspecs = serializers.DictField(child=KernelspecSerializer())


# --- Kernels --------------------------------------------------------------------------------


class KernelSerializer(serializers.Serializer):
    id = serializers.CharField()
    name = serializers.CharField(allow_null=True)
    last_activity = serializers.CharField(allow_null=True)
    execution_state = serializers.CharField(allow_null=True)
    connections = serializers.IntegerField(allow_null=True)


class KernelStartSerializer(StrictObject):
    name = StrictCharField(required=False, **NAME, help_text="Kernelspec (default: the server's).")
    path = JupyterPath(required=False, root=True, help_text="The kernel's working directory.")


# --- Sessions -------------------------------------------------------------------------------


class NotebookRefSerializer(serializers.Serializer):
    path = serializers.CharField(allow_null=True)
    name = serializers.CharField(allow_null=True)


class SessionSerializer(serializers.Serializer):
    id = serializers.CharField()
    path = serializers.CharField(allow_null=True)
    name = serializers.CharField(allow_null=True)
    type = serializers.CharField(allow_null=True)
    kernel = KernelSerializer(allow_null=True)
    notebook = NotebookRefSerializer()


class SessionKernelSerializer(StrictObject):
    id = StrictCharField(required=False, **NAME, help_text="An existing kernel.")
    name = StrictCharField(required=False, **NAME, help_text="A kernelspec for a new kernel.")


class SessionCreateSerializer(StrictObject):
    path = JupyterPath()
    name = StrictCharField(required=False, **PATH)
    type = StrictCharField(required=False, max_length=50, help_text="notebook (default), file...")
    kernel = SessionKernelSerializer(required=False)


class SessionUpdateSerializer(StrictObject):
    path = JupyterPath(required=False)
    name = StrictCharField(required=False, **PATH)
    type = StrictCharField(required=False, max_length=50)
    kernel = SessionKernelSerializer(required=False)


# --- Terminals ------------------------------------------------------------------------------


class TerminalSerializer(serializers.Serializer):
    name = serializers.CharField()
    last_activity = serializers.CharField(allow_null=True)


class TerminalCreateSerializer(StrictObject):
    cwd = StrictCharField(required=False, **PATH)


# --- Requests -------------------------------------------------------------------------------


class AcceptedSerializer(serializers.Serializer):
    """202: the supernode has not finished within RTC_API_ACTION_TIMEOUT; poll ``url``."""

    id = serializers.CharField()
    status = serializers.CharField()
    url = serializers.CharField()


class RequestRecordSerializer(serializers.Serializer):
    id = serializers.CharField()
    action = serializers.CharField(allow_null=True)
    params = serializers.DictField(allow_null=True)
    status = serializers.CharField(
        allow_null=True, help_text="requested, running, completed, error."
    )
    result = serializers.DictField(allow_null=True, help_text="Jupyter's answer.")
    error = serializers.CharField(allow_null=True)
    requested_by = serializers.CharField(allow_null=True)
    created_at = serializers.CharField(allow_null=True)
    finished_at = serializers.CharField(allow_null=True)


class EmptySerializer(StrictObject):
    pass


# --- Contents -------------------------------------------------------------------------------

CONTENT_TYPES = ("file", "directory", "notebook")
FORMATS = ("text", "base64", "json")


class ContentsModelSerializer(serializers.Serializer):
    name = serializers.CharField(allow_null=True)
    path = serializers.CharField(allow_null=True, allow_blank=True)
    type = serializers.CharField(allow_null=True)
    created = serializers.CharField(allow_null=True)
    last_modified = serializers.CharField(allow_null=True)
    mimetype = serializers.CharField(allow_null=True)
    format = serializers.CharField(allow_null=True)
    size = serializers.IntegerField(allow_null=True, required=False)
    writable = serializers.BooleanField(allow_null=True)
    content = serializers.JSONField(
        allow_null=True,
        help_text="A directory's entries (models without content), a notebook (json), a file's "
        "text or base64; null when not asked for.",
    )


class ContentsQuerySerializer(QuerySerializer):
    type = serializers.ChoiceField(choices=CONTENT_TYPES, required=False)
    format = serializers.ChoiceField(choices=FORMATS, required=False)
    content = serializers.ChoiceField(
        choices=("0", "1"), required=False, help_text="0: the model without its content."
    )


class ContentsCreateSerializer(StrictObject):
    type = serializers.ChoiceField(choices=CONTENT_TYPES, required=False)
    ext = StrictCharField(required=False, max_length=50, help_text="e.g. .txt, for type file.")
    copy_from = JupyterPath(required=False, help_text="Copy this path here.")

    def validate(self, data: dict[str, Any]) -> dict[str, Any]:
        if "copy_from" in data and ("type" in data or "ext" in data):
            raise serializers.ValidationError("Give copy_from, or type and ext, not both.")
        return data


class ContentsSaveSerializer(StrictObject):
    type = serializers.ChoiceField(choices=CONTENT_TYPES)
    format = serializers.ChoiceField(choices=FORMATS, required=False, allow_null=True)
    content = serializers.JSONField(required=False, allow_null=True)
    name = StrictCharField(required=False, **PATH)
    path = StrictCharField(required=False, **PATH)
    chunk = serializers.IntegerField(required=False)

    def validate(self, data: dict[str, Any]) -> dict[str, Any]:
        if "chunk" in data:
            raise serializers.ValidationError({"chunk": ["Chunked uploads are not supported."]})
        if data["type"] == "notebook" and data.get("content") is not None:
            problem = notebook_problem(data["content"])
            if problem:
                raise serializers.ValidationError({"content": [problem]})
        return data


def notebook_problem(content: Any) -> str | None:
    """Why ``content`` is not a valid notebook (nbformat's own validation), or None.

    Checked before anything is asked of Jupyter, whose failed write of an invalid notebook
    would answer 502 and could leave an empty file behind.
    """
    if not isinstance(content, dict):
        return "a notebook's content is a JSON object (nbformat 4)"
    try:
        nbformat.validate(nbformat.from_dict(content))
    except nbformat.ValidationError as error:
        return f"not a valid notebook: {error.message}"
    except Exception as error:  # nbformat rejects some shapes before validating
        return f"not a valid notebook: {error}"
    return None


class ContentsRenameSerializer(StrictObject):
    path = JupyterPath(help_text="The new path.")


# --- Executions -----------------------------------------------------------------------------

CODE = {"max_length": 1_000_000, "allow_blank": True}
SOURCE_HASH = {
    "min_length": 64,
    "max_length": 64,
    "help_text": "With a cell: sha256 (hex) of the source the caller means to run. If the "
    "cell's source differs, 409 source-changed and nothing is run.",
}


class ExecutionCreateSerializer(StrictObject):
    document_id = StrictCharField(
        required=False,
        **NAME,
        help_text="With cell_id: a notebook cell. The document's id, bare or as its room id "
        "(json:notebook:<id>).",
    )
    cell_id = StrictCharField(required=False, **NAME)
    kernel_id = StrictCharField(required=False, **NAME, help_text="With code: console code.")
    code = StrictCharField(required=False, **CODE)
    source_hash = StrictCharField(required=False, **SOURCE_HASH)

    def validate(self, data: dict[str, Any]) -> dict[str, Any]:
        if "source_hash" in data and "cell_id" not in data:
            raise serializers.ValidationError({"source_hash": ["Only with a cell."]})
        cell = {"document_id", "cell_id"} & set(data)
        console = {"kernel_id", "code"} & set(data)
        if cell and console:
            raise serializers.ValidationError(
                "Give document_id and cell_id, or kernel_id and code."
            )
        wanted = ("document_id", "cell_id") if cell else ("kernel_id", "code")
        missing = [name for name in wanted if name not in data]
        if missing:
            raise serializers.ValidationError(
                {name: ["This field is required."] for name in missing}
            )
        return data


class RunCellsSerializer(StrictObject):
    cell_ids = serializers.ListField(
        child=StrictCharField(**NAME),
        required=False,
        allow_empty=False,
        max_length=100_000,
        help_text="The code cells to run, in this order; default: every code cell of the "
        "notebook, in the notebook's order.",
    )

    def validate_cell_ids(self, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise serializers.ValidationError("A cell is named twice.")
        return value


class QueuedExecutionSerializer(serializers.Serializer):
    id = serializers.CharField()
    cell_id = serializers.CharField()
    url = serializers.CharField(help_text="The execution: GET it for its status and outputs.")


class RunCellsAnswerSerializer(serializers.Serializer):
    executions = QueuedExecutionSerializer(many=True, help_text="In the order they run.")


class InputRequestSerializer(serializers.Serializer):
    prompt = serializers.CharField(allow_blank=True)
    password = serializers.BooleanField()


class ExecutionSerializer(serializers.Serializer):
    id = serializers.CharField()
    document_id = serializers.CharField(allow_null=True)
    cell_id = serializers.CharField(allow_null=True)
    kernel_id = serializers.CharField(allow_null=True)
    session_id = serializers.CharField(
        allow_null=True, help_text="A cell's: the notebook's session whose kernel ran it."
    )
    code = serializers.CharField(
        allow_null=True, allow_blank=True, help_text="For a cell: its source as it ran."
    )
    source_hash = serializers.CharField(
        allow_null=True, help_text="A cell's: sha256 of its source when the request was accepted."
    )
    source_changed = serializers.BooleanField(
        allow_null=True,
        help_text="A cell's: true when it was edited between the request and the run (code is "
        "what ran).",
    )
    status = serializers.CharField(
        allow_null=True, help_text="requested, queued, running, completed, error, cancelled."
    )
    requested_by = serializers.CharField(allow_null=True)
    outputs = serializers.ListField(
        child=serializers.DictField(),
        help_text="nbformat outputs (for a cell: the cell's outputs in the notebook).",
    )
    execution_count = serializers.IntegerField(allow_null=True)
    error = serializers.CharField(allow_null=True)
    created_at = serializers.CharField(allow_null=True)
    started_at = serializers.CharField(allow_null=True)
    finished_at = serializers.CharField(allow_null=True)
    input_request = InputRequestSerializer(
        allow_null=True, help_text="Set while the kernel waits for input: answer at .../input."
    )


class ExecutionQuerySerializer(QuerySerializer):
    document_id = StrictCharField(**NAME, help_text="Bare, or the room id json:notebook:<id>.")
    cell_id = StrictCharField(required=False, **NAME)


class ProvenanceSerializer(ExecutionSerializer):
    """An execution without outputs: a cell's outputs are those of its latest run only."""

    outputs = None
    shows_outputs = serializers.BooleanField(
        help_text="This run produced the outputs the cell shows (the cell's latest started run)."
    )


class InputReplySerializer(StrictObject):
    value = StrictCharField(**CODE)


class KernelExecuteSerializer(serializers.Serializer):
    """Both front ends' shapes: ``{cell_id, document_id}`` (jupyter-collaboration) or ``{code,
    metadata: {cell_id, document_id}}`` (jupyter-server-nbmodel)."""

    code = StrictCharField(required=False, **CODE)
    metadata = serializers.DictField(required=False)
    cell_id = StrictCharField(required=False, **NAME)
    document_id = StrictCharField(
        required=False, **NAME, help_text="Bare, or the room id json:notebook:<id>."
    )
    source_hash = StrictCharField(required=False, **SOURCE_HASH)

    def validate(self, data: dict[str, Any]) -> dict[str, Any]:
        metadata = data.get("metadata") or {}
        cell_id = data.get("cell_id", metadata.get("cell_id"))
        document_id = data.get("document_id", metadata.get("document_id"))
        for name, value in (("cell_id", cell_id), ("document_id", document_id)):
            if value is not None and (not isinstance(value, str) or not 0 < len(value) <= 200):
                raise serializers.ValidationError({name: ["Not a string of 1-200 characters."]})
        if cell_id and document_id:
            cell = {"cell_id": cell_id, "document_id": document_id}
            if "source_hash" in data:
                cell["source_hash"] = data["source_hash"]
            return cell
        if "code" in data:
            return {"code": data["code"]}
        raise serializers.ValidationError("Give code, or cell_id and document_id.")


class KernelInputReplySerializer(StrictObject):
    input = StrictCharField(**CODE)


class KernelResultSerializer(serializers.Serializer):
    status = serializers.CharField(help_text="ok, error or aborted.")
    execution_count = serializers.IntegerField(allow_null=True)
    outputs = serializers.CharField(help_text="The outputs, as a JSON string.")
    error = serializers.CharField(required=False)


class KernelInputRequestSerializer(serializers.Serializer):
    parent_header = serializers.DictField()
    input_request = InputRequestSerializer()
