"""The wire formats of the server's two WebSocket protocols, as pure functions over text and
bytes: ``json_protocol`` (``/ws/datastores/<datastore>/``) and ``yjs_protocol`` (y-websocket,
``/ws/yjs/<datastore>``). The server's consumers and hub and this package's client all use them.
"""
