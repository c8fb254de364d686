"""Import rules the layout keeps, checked on the source (every import, at module level or inside
a function):

- layers: ``tables`` imports neither ``relay`` nor ``jupyter_sync`` (nor the example app);
  ``relay`` does not import ``jupyter_sync``;
- the Python client (``client/rtc_client``) is a package of its own: no Django, nothing of the
  server;
- the JupyterLab bridge (``bridge/jupyter_rtc_bridge``), a Jupyter Server extension installed
  into Jupyter's environment, imports only the standard library, Jupyter Server (with its
  traitlets) and tornado: nothing of Django or of this repository's other packages;
- web code (everything but ``jupyter_sync/supernode/`` and the ``run_supernode`` command) never
  imports the supernode: it is another process;
- ``jupyter_sync/jupyter/``, the Jupyter client library, imports no Django (nor channels, REST
  framework, tables or relay);
- the supernode reaches the relay as a peer over WebSocket: nothing it imports, directly or
  through the project's modules, pulls in the relay's server side (``relay.hub``,
  ``relay.consumers``);
- ``jupyter_sync/records.py``, which both sides write through, imports nothing of the relay
  (directly or through the project's modules);
- the collaboration WebSocket consumers (``jupyter_sync/collaboration/room.py``, ``routing.py``)
  never import REST modules: ``rest_framework`` directly, the REST views (``jupyter_sync.api``,
  ``tables.api``) directly or through the project's modules. The session view
  (``collaboration/session.py``) is a REST view and may.
"""

import ast
import sys
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


def module_file(module: str, root: Path = ROOT) -> Path | None:
    """The project's file for ``module`` (None: not the project's, or not a module)."""
    base = root.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def module_parent(module: str) -> str:
    return module.rpartition(".")[0]


def reached_modules(path: Path, root: Path = ROOT) -> dict[str, list[str]]:
    """Every module the file imports, directly or through the project's modules (parent
    packages included, as Python imports them), with the chain of files that leads there."""
    start = str(path.relative_to(root))
    reached: dict[str, list[str]] = {}
    queue = [(path, [start])]
    while queue:
        current, chain = queue.pop(0)
        for _line, module in imported_modules(current, root):
            parts = module.split(".")
            for end in range(1, len(parts) + 1):
                name = ".".join(parts[:end])
                if name in reached:
                    continue
                found = module_file(name, root)
                if found is None and (end < len(parts) or module_file(module_parent(name), root)):
                    # A package outside the project (its full name is enough), or a name a
                    # project module defines (a class, a function).
                    continue
                reached[name] = chain
                if found is not None:
                    queue.append((found, [*chain, str(found.relative_to(root))]))
    return reached


def reached_violations(files, forbidden: tuple[str, ...]) -> list[str]:
    return [
        f"{' -> '.join(chain)} imports {module}"
        for path in files
        for module, chain in sorted(reached_modules(path).items())
        if any(is_within(module, package) for package in forbidden)
    ]


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


def test_the_layers_import_downwards_only():
    found = violations(python_files("tables"), ("relay", "jupyter_sync", "todo"))
    found += violations(python_files("relay"), ("jupyter_sync", "todo"))
    assert not found, "an import runs up the layers:\n" + "\n".join(found)


def test_the_python_client_imports_nothing_of_the_server():
    forbidden = ("django", "channels", "rest_framework", "daphne", *SOURCES)
    found = violations(python_files("client/rtc_client"), forbidden)
    assert not found, "client/rtc_client imports the server's code:\n" + "\n".join(found)


BRIDGE_MAY_IMPORT = {"__future__", "jupyter_server", "tornado", "traitlets", "jupyter_rtc_bridge"}


def test_the_bridge_imports_only_jupyter_server_tornado_and_the_standard_library():
    found = [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for path in python_files("bridge/jupyter_rtc_bridge")
        for line, module in imported_modules(path)
        if module.split(".")[0] not in BRIDGE_MAY_IMPORT | sys.stdlib_module_names
    ]
    assert not found, "bridge/jupyter_rtc_bridge imports beyond its dependencies:\n" + "\n".join(
        found
    )


def test_the_jupyter_client_library_imports_no_django():
    forbidden = ("django", "channels", "rest_framework", "tables", "relay", "jupyter_sync")
    found = [
        violation
        for violation in violations(python_files("jupyter_sync/jupyter"), forbidden)
        if not violation.split(" imports ")[1].startswith("jupyter_sync.jupyter")
    ]
    assert not found, "jupyter_sync/jupyter imports outside itself:\n" + "\n".join(found)


def supernode_files() -> list[Path]:
    return [
        path
        for side in SUPERNODE_SIDE
        for path in (sorted(side.rglob("*.py")) if side.is_dir() else [side])
    ]


def test_the_supernode_never_imports_the_relay_server_side():
    found = reached_violations(supernode_files(), ("relay.hub", "relay.consumers"))
    assert not found, "the supernode imports the relay's server side:\n" + "\n".join(found)


def test_the_records_service_imports_nothing_of_the_relay():
    found = reached_violations([ROOT / "jupyter_sync" / "records.py"], ("relay",))
    assert not found, "jupyter_sync/records.py imports the relay:\n" + "\n".join(found)


WEBSOCKET_CONSUMERS = [
    ROOT / "jupyter_sync" / "collaboration" / "room.py",
    ROOT / "jupyter_sync" / "collaboration" / "routing.py",
]


def test_the_collaboration_consumers_never_import_rest_modules():
    found = violations(WEBSOCKET_CONSUMERS, ("rest_framework",))
    found += reached_violations(WEBSOCKET_CONSUMERS, ("jupyter_sync.api", "tables.api"))
    assert not found, "a collaboration consumer imports REST modules:\n" + "\n".join(found)


def test_the_rules_see_a_function_level_import(tmp_path):
    bad = tmp_path / "jupyter_sync" / "api" / "bad.py"
    bad.parent.mkdir(parents=True)
    bad.write_text("def f():\n    from ..supernode import node\n")
    assert imported_modules(bad, tmp_path) == [
        (2, "jupyter_sync.supernode"),
        (2, "jupyter_sync.supernode.node"),
    ]


def test_the_rules_follow_imports_through_the_project(tmp_path):
    for name, text in {
        "jupyter_sync/__init__.py": "",
        "jupyter_sync/records.py": "from jupyter_sync import waiting\n",
        "jupyter_sync/waiting.py": "def wait():\n    from relay.hub import get_hub\n",
        "relay/__init__.py": "",
        "relay/hub.py": "import asyncio\n",
    }.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    reached = reached_modules(tmp_path / "jupyter_sync" / "records.py", tmp_path)
    assert reached["relay.hub"] == ["jupyter_sync/records.py", "jupyter_sync/waiting.py"]
    assert reached["asyncio"][-1] == "relay/hub.py"
