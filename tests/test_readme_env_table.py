"""Every environment variable the settings read is listed in the README's table."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_setting_variable_is_documented_in_the_readme():
    settings_source = (ROOT / "dashboard" / "settings.py").read_text()
    readme = (ROOT / "README.md").read_text()
    names = set(re.findall(r'env_\w+\(\s*"([A-Z][A-Z0-9_]+)"', settings_source))
    assert len(names) > 30
    missing = sorted(n for n in names if f"`{n}`" not in readme)
    assert not missing, f"add these to the README's environment table: {missing}"
