"""Import rules the layout keeps, checked on the source (every import, at module level or inside
a function):

- web code (everything but ``jupyter_sync/supernode/`` and the ``run_supernode`` command) never
  imports the supernode: it is another process;
- ``jupyter_sync/jupyter/``, the Jupyter client library, imports no Django (nor channels, REST
  framework, tables or relay);
- the collaboration room (``jupyter_sync/collaboration/``) never imports the REST views
  (``jupyter_sync.api``).
"""

import ast
from pathlib import Path

from tests.support import ROOT

SOURCES = ("jupyter_sync", "relay", "tables", "todo", "rtc_project")
SUPERNODE_SIDE = (
    ROOT / "jupyter_sync" / "supernode",
    ROOT / "jupyter_sync" / "management" / "commands" / "run_supernode.py",
)


def imported_modules(path: Path, root: Path = ROOT) -> list[tuple[int, str]]:
    """(line, module) of every import in the file; relative imports resolved."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = ".".join(path.relative_to(root).with_suffix("").parts[:-1])
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parent = parts[: len(parts) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            found.append((node.lineno, base))
            # ``from jupyter_sync import supernode`` names a module too.
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return found


def python_files(*folders: str):
    for folder in folders:
        yield from sorted((ROOT / folder).rglob("*.py"))


def is_within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def violations(files, forbidden: tuple[str, ...]) -> list[str]:
    return [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for path in files
        for line, module in imported_modules(path)
        if any(is_within(module, package) for package in forbidden)
    ]


def test_web_code_never_imports_the_supernode():
    web = [
        path
        for path in python_files(*SOURCES)
        if not any(path == side or side in path.parents for side in SUPERNODE_SIDE)
    ]
    found = violations(web, ("jupyter_sync.supernode",))
    assert not found, "web code imports the supernode:\n" + "\n".join(found)


def test_the_jupyter_client_library_imports_no_django():
    forbidden = ("django", "channels", "rest_framework", "tables", "relay", "jupyter_sync")
    found = [
        violation
        for violation in violations(python_files("jupyter_sync/jupyter"), forbidden)
        if not violation.split(" imports ")[1].startswith("jupyter_sync.jupyter")
    ]
    assert not found, "jupyter_sync/jupyter imports outside itself:\n" + "\n".join(found)


def test_the_collaboration_room_never_imports_the_rest_views():
    found = violations(python_files("jupyter_sync/collaboration"), ("jupyter_sync.api",))
    assert not found, "jupyter_sync/collaboration imports REST views:\n" + "\n".join(found)


def test_the_rules_see_a_function_level_import(tmp_path):
    bad = tmp_path / "jupyter_sync" / "api" / "bad.py"
    bad.parent.mkdir(parents=True)
    bad.write_text("def f():\n    from ..supernode import node\n")
    assert imported_modules(bad, tmp_path) == [
        (2, "jupyter_sync.supernode"),
        (2, "jupyter_sync.supernode.node"),
    ]
