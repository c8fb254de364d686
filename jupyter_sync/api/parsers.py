"""Request bodies on the Jupyter-shaped routes: JSON, whatever the ``Content-Type`` says.

Jupyter Server reads every API body as JSON without looking at its content type, and JupyterLab
relies on it: its ``ServerConnection`` sends ``JSON.stringify(...)`` bodies, which ``fetch`` labels
``text/plain;charset=UTF-8`` (the collaboration session PUT, the server-side cell executor's
``POST /api/kernels/<id>/execute``). The routes that answer JupyterLab do the same, so a body that
is not JSON is a 400 (``parse-error``), never a 415.
"""

from __future__ import annotations

from tables.api.parsers import JSONParser


class AnyTypeJSONParser(JSONParser):
    """JSON under any (or no) content type; listed after ``JSONParser``, which keeps
    ``application/json`` first in the OpenAPI schema."""

    media_type = "*/*"
