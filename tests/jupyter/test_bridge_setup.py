"""Installing and configuring the bridge, on real Jupyter Server processes: enabled by the install,
settings from options or the environment, the page config JupyterLab reads, no secret in the page,
and a clear refusal to start when misconfigured or next to ``jupyter_server_ydoc``.

No RTC server runs here: nothing below sends a request to it (the URL names a closed port).
"""

from __future__ import annotations

import html
import importlib.util
import json
import re
import subprocess

import pytest

from jupyter_sync.jupyter.launcher import free_port
from tests.support.bridged_jupyter import BridgedJupyter, jupyter_command
from tests.support.sockets import kernel_socket_nodelay

pytest_plugins = ["tests.support.bridged_jupyter"]

SECRET = "bridge-secret-7f3c9a2e"
STOCK_KERNEL_CONNECTION = (
    "jupyter_server.services.kernels.connection.channels.ZMQChannelsWebsocketConnection"
)
PAGE_CONFIG = re.compile(
    r'<script id="jupyter-config-data" type="application/json">(.*?)</script>', re.S
)


def page_config(lab: BridgedJupyter) -> tuple[str, dict]:
    status, _headers, body = lab.request("GET", "/lab")
    assert status == 200
    page = body.decode()
    found = PAGE_CONFIG.search(page)
    assert found, page[:2000]
    return page, json.loads(html.unescape(found.group(1)))


def refusal(run: subprocess.CompletedProcess[str]) -> str:
    """The one line the bridge logs when it refuses to start."""
    assert run.returncode != 0, run.stderr
    lines = [line for line in run.stderr.splitlines() if "jupyter_rtc_bridge:" in line]
    assert len(lines) == 1, run.stderr
    return lines[0]


def test_a_plain_install_enables_the_extension(tmp_path):
    env = {
        "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
        "JUPYTER_DATA_DIR": str(tmp_path / "data"),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
        "PATH": "/usr/bin:/bin",
    }
    listed = subprocess.run(
        jupyter_command("server", "extension", "list"),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    output = re.sub(r"\x1b\[[0-9;]*m", "", listed.stdout + listed.stderr)  # no colours
    assert re.search(r"jupyter_rtc_bridge\s+enabled", output), output


def test_setup_installs_the_jupyterlab_extension_and_jupyterlab_enables_it(tmp_path):
    env = {
        "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
        "JUPYTER_DATA_DIR": str(tmp_path / "data"),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
        "PATH": "/usr/bin:/bin",
    }
    listed = subprocess.run(
        jupyter_command("labextension", "list"),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    output = re.sub(r"\x1b\[[0-9;]*m", "", listed.stdout + listed.stderr)
    assert re.search(r"jupyter-rtc-bridge v[\d.]+\s+enabled\s+OK", output), output


def test_the_page_config_says_collaborate_and_hides_the_rtc_server(bridged_jupyter):
    port = free_port()
    lab = bridged_jupyter(
        None,
        None,
        env={"RTC_SERVER_URL": f"http://127.0.0.1:{port}", "RTC_BRIDGE_TOKEN": SECRET},
    )
    page, config = page_config(lab)
    assert config["disableRTC"] is False
    assert config["serverSideExecution"] is True
    for secret in (SECRET, f"127.0.0.1:{port}", str(port)):
        assert secret not in page
        assert secret not in json.dumps(config)
    status, _headers, body = lab.request("GET", "/api/me")
    assert status == 200 and SECRET not in body.decode() and str(port) not in body.decode()
    # The RTC server's address stays out of errors too.
    status, _headers, body = lab.request("GET", "/api/collaboration/timeline/a.ipynb")
    assert status == 503 and str(port) not in body.decode()
    assert set(json.loads(body)) == {"message", "reason"}


def test_without_a_server_url_the_bridge_stays_out_of_the_way(bridged_jupyter):
    lab = bridged_jupyter(None, None)
    _page, config = page_config(lab)
    # The collaboration front end is told to stay off, not left calling routes nobody serves.
    assert config["disableRTC"] is True
    assert config["serverSideExecution"] is False
    assert lab.request("GET", "/api/collaboration/timeline/a.ipynb")[0] == 404
    assert "no RTC server configured" in lab.log


@pytest.mark.parametrize(
    ("url", "token", "says"),
    [
        ("ftp://rtc.example.org", SECRET, "must be an http:// or https:// URL"),
        ("http://127.0.0.1:99999", SECRET, "bad port"),
        ("http://127.0.0.1:8000", None, "RTCBridge.token"),
    ],
)
def test_bad_settings_stop_the_server_with_one_line(url, token, says):
    lab = BridgedJupyter(url, token)
    try:
        line = refusal(lab.run_to_exit())
    finally:
        lab.close()
    assert says in line
    assert SECRET not in line


def test_the_bridge_refuses_to_start_beside_jupyter_server_ydoc(tmp_path):
    # jupyter-server-ydoc is not installed here; a stand-in of that name, enabled, is enough.
    assert importlib.util.find_spec("jupyter_server_ydoc") is None
    fake = tmp_path / "fake" / "jupyter_server_ydoc"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text(
        "def _jupyter_server_extension_points():\n"
        "    return [{'module': 'jupyter_server_ydoc'}]\n\n"
        "def _load_jupyter_server_extension(serverapp):\n"
        "    pass\n"
    )
    lab = BridgedJupyter(
        f"http://127.0.0.1:{free_port()}",
        SECRET,
        extensions={"jupyter_server_ydoc": True},
        env={"PYTHONPATH": str(fake.parent)},
    )
    try:
        line = refusal(lab.run_to_exit())
    finally:
        lab.close()
    assert "jupyter_server_ydoc is also enabled" in line


@pytest.mark.parametrize("nodelay", [True, False], ids=["default", "turned-off"])
def test_kernel_websockets_send_each_message_at_once(bridged_jupyter, nodelay):
    """The bridge turns TCP_NODELAY on for the server's kernel sockets (tornado leaves Nagle's
    algorithm on, which holds a kernel's back-to-back messages ~40 ms each); read off the
    server's own socket, not timed. ``RTCBridge.kernel_nodelay=False`` leaves tornado's default,
    and works with no RTC server configured."""
    # Jupyter Server's own class, not the launcher's (which sends at once by itself).
    args = [f"--ServerApp.kernel_websocket_connection_class={STOCK_KERNEL_CONNECTION}"]
    if not nodelay:
        args.append("--RTCBridge.kernel_nodelay=False")
    lab = bridged_jupyter(None, None, args=args)
    status, _headers, body = lab.request("POST", "/api/kernels", body=b"{}")
    assert status == 201, body
    kernel_id = json.loads(body)["id"]
    try:
        assert kernel_socket_nodelay(lab, kernel_id) is nodelay
    finally:
        lab.request("DELETE", f"/api/kernels/{kernel_id}")
