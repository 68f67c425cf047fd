"""CLOUD_PROJECTS_FILE: what a good file gives, and what a bad one says (file, line, reason)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from dashboard.cloud import config as cloud_config
from dashboard.cloud import projects

GOOD = """\
# Two regions, one dashboard.
[[project]]
name = "beijing"
region = "cn-north-4"
label = "Beijing offices"
project_id = "0123456789abcdef0123456789abcdef"
ak_env = "BJ_AK"
sk_env = "BJ_SK"
operator_groups = ["ops-beijing"]

[[project]]
name = "singapore"
region = "ap-southeast-1"
ak_env = "SG_AK"
sk_env = "SG_SK"
approver_groups = ["leads-sg"]
[project.endpoints]
iam = "https://iam.example.internal/"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "projects.toml"
    path.write_text(text)
    return path


def test_a_good_file_lists_its_projects_in_order(tmp_path):
    beijing, singapore = projects.load(write(tmp_path, GOOD))
    assert (beijing.name, beijing.region, beijing.title) == (
        "beijing",
        "cn-north-4",
        "Beijing offices",
    )
    assert beijing.project_id == "0123456789abcdef0123456789abcdef"
    assert beijing.groups_for("operator") == ("ops-beijing",)
    assert (singapore.title, singapore.project_id) == ("singapore", "")  # looked up through IAM
    assert singapore.endpoint("iam") == "https://iam.example.internal"
    assert singapore.groups_for("approver") == ("leads-sg",)


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        ('[[project]]\nname = "a"\n', 1, "region is required"),
        ('[[project]]\nname = "A b"\nregion = "cn-north-4"\n', 1, "must be lowercase"),
        ('[[project]]\nname = "a"\nregion = "moon"\nak_env="X"\nsk_env="Y"\n', 1, "region"),
        (
            GOOD
            + '\n[[project]]\nname = "beijing"\nregion = "cn-north-4"\nak_env="A"\nsk_env="B"\n',
            20,
            "used twice",
        ),
        ('[[project]]\nname = "a"\nregion = "cn-north-4"\nak_env = "X"\n', 1, "go together"),
        ('[[project]]\nname = "a"\nregion = "cn-north-4"\n', 1, "name the credentials"),
        (
            '\n\n[[project]]\nname = "a"\nregion = "cn-north-4"\nak_env = "X"\nsk_env = "Y"\n'
            'colour = "blue"\n',
            3,
            "unknown key 'colour'",
        ),
        (
            '[[project]]\nname = "a"\nregion = "cn-north-4"\nak_env = "AKIA+/secret=="\n'
            'sk_env = "Y"\n',
            1,
            "not hold a secret",
        ),
        (  # an access key pasted where the variable's name belongs
            '[[project]]\nname = "a"\nregion = "cn-north-4"\nak_env = "HPUAQ4ZP7XK2M9LWN3RT"\n'
            'sk_env = "Y"\n',
            1,
            "not hold a secret",
        ),
        (
            '[[project]]\nname = "a"\nregion = "cn-north-4"\nak_env = "X"\nsk_env = "Y"\n'
            'project_id = "nope"\n',
            1,
            "32 lowercase hexadecimal",
        ),
        (
            '[[project]]\nname = "a"\nregion = "cn-north-4"\nak_env = "X"\nsk_env = "Y"\n'
            '[project.endpoints]\nims = "ftp://x"\n',
            1,
            "endpoints.ims",
        ),
    ],
)
def test_a_bad_project_is_refused_with_its_line_and_the_reason(tmp_path, text, line, reason):
    with pytest.raises(ImproperlyConfigured) as refused:
        projects.load(write(tmp_path, text))
    message = str(refused.value)
    assert "projects.toml" in message
    assert f"line {line} " in message
    assert reason in message


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("[[project]\n", "line 1"),  # TOML syntax: tomllib's own line and column
        ('title = "x"\n', "unknown top-level key 'title'"),
        ("", "no [[project]] table"),
    ],
)
def test_a_file_that_is_not_a_projects_file_is_refused(tmp_path, text, reason):
    with pytest.raises(ImproperlyConfigured, match="CLOUD_PROJECTS_FILE") as refused:
        projects.load(write(tmp_path, text))
    assert reason in str(refused.value)


def test_a_bad_file_stops_start_up_with_the_reason(tmp_path):
    """settings.py loads the file: any manage.py command refuses to start."""
    path = write(tmp_path, '[[project]]\nname = "a"\n')
    env = {**os.environ, "CLOUD_PROJECTS_FILE": str(path), "DEBUG": "1"}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    done = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=Path(__file__).resolve().parent.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    assert f"CLOUD_PROJECTS_FILE {path}, line 1 (project 1): region is required" in done.stderr


def test_without_a_file_the_single_project_variables_are_one_project(settings):
    settings.CLOUD_PROJECTS = ()
    settings.HUAWEICLOUD = {
        **settings.HUAWEICLOUD,
        "REGION": "ap-southeast-1",
        "PROJECT_ID": "f" * 32,
    }
    [only] = projects.configured()
    assert (only.name, only.region, only.project_id, only.legacy) == (
        "ap-southeast-1",
        "ap-southeast-1",
        "f" * 32,
        True,
    )
    assert cloud_config.for_project(only) == cloud_config.from_settings()


def test_a_project_reads_its_secrets_from_the_variables_it_names(settings, monkeypatch, tmp_path):
    settings.HUAWEICLOUD = {
        **settings.HUAWEICLOUD,
        "IAM_ENDPOINT": "http://127.0.0.1:9",
        "WORKSPACE_ENDPOINT": "http://127.0.0.1:7",
        "WORKSPACEAPP_ENDPOINT": "",
    }
    secret_file = tmp_path / "sk"
    secret_file.write_text("sg-secret\n")
    monkeypatch.setenv("SG_AK", "SGACCESSKEY")
    monkeypatch.setenv("SG_SK_FILE", str(secret_file))
    monkeypatch.delenv("SG_SK", raising=False)
    _, singapore = projects.load(write(tmp_path, GOOD))
    config = cloud_config.for_project(singapore)
    assert (config.ak, config.sk, config.region) == ("SGACCESSKEY", "sg-secret", "ap-southeast-1")
    # The file's override wins over the variable; the variable over the region's table.
    assert config.iam_endpoint == "https://iam.example.internal"
    assert config.workspace_endpoint == "http://127.0.0.1:7"
    assert "ap-southeast-1" in config.workspaceapp_endpoint
    assert "sg-secret" not in repr(config)
