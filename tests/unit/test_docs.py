"""The README documents every setting."""

from jupyter_sync.conf import SETTINGS as JUPYTER_SETTINGS
from tables.conf import SETTINGS
from tests.support import ROOT

README = (ROOT / "README.md").read_text()


def test_every_rtc_setting_is_in_the_configuration_table():
    for setting in (*SETTINGS, *JUPYTER_SETTINGS):
        default = f"`{setting.default}`" if setting.default != "" else "empty"
        assert f"| `{setting.env}` | {default} |" in README, setting.env
