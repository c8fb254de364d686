"""Jupyter Server's REST API, served from the shared model (``/api/kernels``, ``/api/sessions``,
``/api/contents/...``, ``/api/executions``...).

Reads answer from the ``jupyter`` datastore's tables. Writes never talk to Jupyter: they write a
``requests`` (or ``executions``) record through the write path and wait, without holding a
thread, for the supernode to carry it out (``waiting``). See docs/architecture.md, "REST API".
"""
