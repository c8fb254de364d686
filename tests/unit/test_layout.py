"""The tests' own layout: test modules share code only through tests.support."""

import ast

from tests.support import ROOT

KINDS = ("unit", "integration", "jupyter", "e2e")


def imported_modules(path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
    return found


def test_test_modules_import_each_other_never_only_the_support_package():
    offences = [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for path in (ROOT / "tests").rglob("*.py")
        if "node_modules" not in path.parts
        for line, module in imported_modules(path)
        if module.startswith("tests.") and not module.startswith("tests.support")
    ]
    assert not offences, "share helpers through tests/support/:\n" + "\n".join(offences)


def test_every_test_module_lives_in_a_folder_of_its_kind():
    misplaced = [
        str(path.relative_to(ROOT))
        for path in (ROOT / "tests").rglob("test_*.py")
        if "node_modules" not in path.parts and path.parent.name not in KINDS
    ]
    assert not misplaced, f"put these under tests/{{{','.join(KINDS)}}}/: {misplaced}"
