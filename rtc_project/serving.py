"""What kind of process this is, for settings that differ between them.

``rtc_project/asgi.py`` sets ``HTTP_WORKER`` before Django loads the settings: a process serving
HTTP runs every request's database work on a thread of its own, so on PostgreSQL it takes its
connections from a pool (``settings.py``). The supernode and management commands do their
database work on one thread and keep their connection instead. A flag in a module, not an
environment variable, so that processes started from a worker do not inherit it.
"""

HTTP_WORKER = False
