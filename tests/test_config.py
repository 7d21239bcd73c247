"""Precedence (flag > env > config section > default), config files, and their failures."""

from __future__ import annotations

from pathlib import Path

import pytest

from ovbackup.config import Flags, default_config_file, resolve
from ovbackup.errors import ConfigError


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.fixture
def conf(tmp_path: Path) -> Path:
    return write(
        tmp_path / "ovbackup.conf",
        "[prod]\nengine_url = https://from-config\nusername = cfg@internal\npassword = cfgpw\n"
        "backup_dir = /srv/cfg\n",
    )


def test_flag_beats_env_beats_config(conf: Path) -> None:
    env = {"OVIRT_URL": "https://from-env", "OVBACKUP_CONFIG_FILE": str(conf)}
    s = resolve(Flags(config="prod", engine_url="https://from-flag"), env)
    assert s.engine_url == "https://from-flag"
    s = resolve(Flags(config="prod"), env)
    assert s.engine_url == "https://from-env"
    assert s.username == "cfg@internal"  # only the config has it
    assert s.password == "cfgpw"
    assert s.backup_dir == "/srv/cfg"
    assert s.output == "table" and s.timeout == 60.0  # defaults


def test_password_file_beats_env(tmp_path: Path) -> None:
    pw = write(tmp_path / "pw", "from-file\n")
    s = resolve(Flags(password_file=str(pw)), {"OVIRT_PASSWORD": "from-env"})
    assert s.password == "from-file"
    assert "from-file" not in repr(s)  # never printed with the settings


def test_ovirt_img_conf_is_used_when_ours_is_missing(tmp_path: Path) -> None:
    write(tmp_path / "ovirt-img.conf", "[engine]\nengine_url = https://img\nusername = u\ncafile = \n")
    env = {"XDG_CONFIG_HOME": str(tmp_path)}
    assert default_config_file(env) == tmp_path / "ovirt-img.conf"
    assert resolve(Flags(config="engine"), env).engine_url == "https://img"


def test_unknown_section_names_the_known_ones(conf: Path) -> None:
    with pytest.raises(ConfigError, match=r"no section \[staging\].*sections: prod"):
        resolve(Flags(config="staging", config_file=str(conf)), {})


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        resolve(Flags(config="x", config_file=str(tmp_path / "nope.conf")), {})


def test_unreadable_password_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read password file"):
        resolve(Flags(password_file=str(tmp_path / "missing")), {})


def test_insecure_from_env_and_config(tmp_path: Path) -> None:
    assert resolve(Flags(), {"OVIRT_INSECURE": "1"}).insecure is True
    c = write(tmp_path / "c.conf", "[a]\nsecure = no\n[b]\ninsecure = maybe\n")
    assert resolve(Flags(config="a", config_file=str(c)), {}).insecure is True
    with pytest.raises(ConfigError, match="yes or no"):
        resolve(Flags(config="b", config_file=str(c)), {})


def test_headers_and_query_are_parsed_and_checked() -> None:
    s = resolve(Flags(headers=("X-Trace: 1",), query=("all_content=true",)), {})
    assert s.headers == {"X-Trace": "1"} and s.query == {"all_content": "true"}
    with pytest.raises(ConfigError, match="bad --header"):
        resolve(Flags(headers=("nocolon",)), {})


def test_bad_output_and_missing_cafile() -> None:
    with pytest.raises(ConfigError, match="unknown output format"):
        resolve(Flags(output="yaml"), {})
    with pytest.raises(ConfigError, match="CA file"):
        resolve(Flags(cafile="/nonexistent/ca.pem"), {})
