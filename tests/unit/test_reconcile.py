"""Reconciling a table with the Jupyter Server's answer changes only what differs."""

from pycrdt import Doc, Map

from jupyter_sync.schema import JUPYTER
from jupyter_sync.supernode.reconcile import reconcile_table

KERNELS = JUPYTER.tables["kernels"]
SPECS = JUPYTER.tables["kernelspecs"]


def updates_of(doc: Doc, change) -> list[bytes]:
    updates: list[bytes] = []
    subscription = doc.observe(lambda event: updates.append(event.update))
    with doc.transaction():
        result = change()
    doc.unobserve(subscription)
    return result, updates


def test_add_change_remove_and_nothing():
    doc = Doc()
    kernels = doc.get("kernels", type=Map)
    done, updates = updates_of(
        doc,
        lambda: reconcile_table(
            kernels,
            KERNELS,
            {
                "k1": {"name": "python3", "execution_state": "idle"},
                "k2": {"name": "python3", "execution_state": "busy"},
            },
        ),
    )
    assert done == {"added": ["k1", "k2"], "changed": [], "removed": []} and len(updates) == 1
    done, _ = updates_of(
        doc,
        lambda: reconcile_table(
            kernels,
            KERNELS,
            {
                "k1": {"name": "python3", "execution_state": "busy"},
            },
        ),
    )
    assert done == {"added": [], "changed": ["k1"], "removed": ["k2"]}
    assert kernels.to_py() == {"k1": {"name": "python3", "execution_state": "busy"}}
    done, updates = updates_of(
        doc,
        lambda: reconcile_table(
            kernels,
            KERNELS,
            {
                "k1": {"name": "python3", "execution_state": "busy"},
            },
        ),
    )
    assert done == {"added": [], "changed": [], "removed": []}
    assert updates == []  # nothing new, nothing sent


def test_map_fields_are_shared_maps_and_compared_by_value():
    doc = Doc()
    specs = doc.get("kernelspecs", type=Map)
    wanted = {"python3": {"name": "python3", "spec": {"language": "python", "argv": ["x"]}}}
    with doc.transaction():
        reconcile_table(specs, SPECS, wanted)
    assert isinstance(specs["python3"]["spec"], Map)
    with doc.transaction():
        assert reconcile_table(specs, SPECS, wanted)["changed"] == []
