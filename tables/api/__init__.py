"""The REST API for datastores (``/api/``): Django REST framework views over ``tables``.

Every request goes through the same pipeline: authenticate (token, then session with CSRF) ->
permissions (``permissions.DatastoreAccess``: the policy of ``tables.permissions``, the one the
WebSocket side uses) -> throttle (``throttling``) -> validate (``serializers``) -> perform through
``tables.service``, ``tables.history`` or ``tables.undo`` -> respond. Errors are JSON
``{"code": ..., "detail": ...}`` (``errors``).
"""
