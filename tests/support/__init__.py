"""What the tests share: waiting under a deadline, live servers, a running supernode, Jupyter,
Node Yjs clients, relay peers and factories. Test modules import from here, never from each
other."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the repository
