"""The bodies of the Jupyter endpoints, in Jupyter Server's shapes (so its clients port with
little work); request bodies are validated here (400 with a message per field)."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from tables.api.serializers import StrictCharField

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
    path = StrictCharField(required=False, **PATH, help_text="The kernel's working directory.")


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
    path = StrictCharField(max_length=4096)
    name = StrictCharField(required=False, **PATH)
    type = StrictCharField(required=False, max_length=50, help_text="notebook (default), file...")
    kernel = SessionKernelSerializer(required=False)


class SessionUpdateSerializer(StrictObject):
    path = StrictCharField(required=False, max_length=4096)
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
