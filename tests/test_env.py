import pytest
from django.core.exceptions import ImproperlyConfigured

from dashboard.env import env_bool, env_int, env_list, env_secret


def test_env_bool_reads_the_usual_spellings(monkeypatch):
    monkeypatch.setenv("FLAG", "yes")
    assert env_bool("FLAG") is True
    monkeypatch.setenv("FLAG", "0")
    assert env_bool("FLAG", True) is False


def test_env_bool_refuses_a_typo(monkeypatch):
    monkeypatch.setenv("FLAG", "ture")
    with pytest.raises(ImproperlyConfigured, match="FLAG"):
        env_bool("FLAG")


def test_env_int_refuses_text_and_values_below_the_minimum(monkeypatch):
    monkeypatch.setenv("N", "five")
    with pytest.raises(ImproperlyConfigured):
        env_int("N", 1)
    monkeypatch.setenv("N", "-1")
    with pytest.raises(ImproperlyConfigured):
        env_int("N", 1, minimum=0)


def test_env_list_splits_and_trims(monkeypatch):
    monkeypatch.setenv("L", " a, b ,,c ")
    assert env_list("L") == ["a", "b", "c"]


def test_env_secret_prefers_the_file(monkeypatch, tmp_path):
    secret = tmp_path / "sk"
    secret.write_text("from-file\n")
    monkeypatch.setenv("SK", "from-env")
    monkeypatch.setenv("SK_FILE", str(secret))
    assert env_secret("SK") == "from-file"


def test_settings_refuse_to_start_without_a_secret_key_when_debug_is_off(tmp_path):
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "DEBUG"}}
    env["DJANGO_SETTINGS_MODULE"] = "dashboard.settings"
    env["ALLOWED_HOSTS"] = "example.org"
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert "SECRET_KEY is required" in result.stderr


def test_settings_refuse_to_start_without_allowed_hosts_when_debug_is_off():
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in {"ALLOWED_HOSTS", "DEBUG"}}
    env["DJANGO_SETTINGS_MODULE"] = "dashboard.settings"
    env["SECRET_KEY"] = "x" * 50
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert "ALLOWED_HOSTS is required" in result.stderr
