"""Settings: precedence, loud errors that name the key, and ``toombos-edge check``."""

from __future__ import annotations

import ipaddress
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import clean_env

from toombos_edge.errors import SettingsError
from toombos_edge.settings import SPECS, Settings, defaults_table


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_are_the_embedded_ones() -> None:
    settings = Settings.load({})
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)
    assert settings.data_dir == Path("data")
    assert settings.db_path == Path("data/edge.db")
    assert settings.log_format == "json"
    assert settings.allowed_origins == ("http://localhost:3000",)


def test_environment_overrides_defaults() -> None:
    settings = Settings.load({"TOOMBOS_PORT": "9001", "TOOMBOS_ACCESS_LOG": "off"})
    assert (settings.port, settings.access_log) == (9001, False)


def test_precedence_defaults_env_toml_flags(tmp_path: Path) -> None:
    env = {"TOOMBOS_PORT": "9001", "TOOMBOS_HOST": "0.0.0.0", "TOOMBOS_DB_READERS": "3"}
    config = write(tmp_path / "edge.toml", 'port = 9002\nhost = "127.0.0.2"\n')
    settings = Settings.load(env, config, {"port": "9003"})
    assert settings.port == 9003  # flag beats TOML beats env
    assert settings.host == "127.0.0.2"  # TOML beats env
    assert settings.db_readers == 3  # env beats default
    assert settings.log_level == "info"  # default where nothing is said


def test_lists_from_env_and_toml(tmp_path: Path) -> None:
    env = {"TOOMBOS_ALLOWED_ORIGINS": "https://a.example, http://localhost:3000"}
    assert Settings.load(env).allowed_origins == ("https://a.example", "http://localhost:3000")
    config = write(tmp_path / "c.toml", 'trusted_proxies = ["10.0.0.0/8", "::1"]\n')
    proxies = Settings.load({}, config).trusted_proxies
    assert proxies == (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("::1"))


def test_settings_are_frozen() -> None:
    settings = Settings.load({})
    with pytest.raises(AttributeError):
        settings.port = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"TOOMBOS_PORT": "ten"}, "TOOMBOS_PORT: expected an integer from 0 to 65535, got 'ten'"),
        ({"TOOMBOS_PORT": "70000"}, "TOOMBOS_PORT: expected an integer from 0 to 65535"),
        ({"TOOMBOS_ACCESS_LOG": "maybe"}, "TOOMBOS_ACCESS_LOG: expected true or false"),
        ({"TOOMBOS_LOG_FORMAT": "xml"}, "TOOMBOS_LOG_FORMAT: expected json or text, got 'xml'"),
        ({"TOOMBOS_LOG_LEVEL": "loud"}, "TOOMBOS_LOG_LEVEL: expected one of debug, info"),
        ({"TOOMBOS_DB_SYNCHRONOUS": "off"}, "TOOMBOS_DB_SYNCHRONOUS: expected normal or full"),
        ({"TOOMBOS_DB_READERS": "0"}, "TOOMBOS_DB_READERS: expected an integer from 1 to 16"),
        ({"TOOMBOS_DB_BATCH_MAX": "1.5"}, "TOOMBOS_DB_BATCH_MAX: expected an integer"),
        ({"TOOMBOS_MAX_BODY_KB": ""}, "TOOMBOS_MAX_BODY_KB: expected an integer"),
        ({"TOOMBOS_SHUTDOWN_TIMEOUT": "soon"}, "TOOMBOS_SHUTDOWN_TIMEOUT: expected a number"),
        ({"TOOMBOS_DATA_DIR": " "}, "TOOMBOS_DATA_DIR: expected a directory path"),
        ({"TOOMBOS_ALLOWED_ORIGINS": "*"}, "TOOMBOS_ALLOWED_ORIGINS: expected comma-separated"),
        (
            {"TOOMBOS_ALLOWED_ORIGINS": "https://*.example"},
            "TOOMBOS_ALLOWED_ORIGINS: expected comma-separated exact origins",
        ),
        (
            {"TOOMBOS_ALLOWED_ORIGINS": "https://a.example/path"},
            "TOOMBOS_ALLOWED_ORIGINS: expected comma-separated exact origins",
        ),
        ({"TOOMBOS_TRUSTED_PROXIES": "10.0.0.300"}, "TOOMBOS_TRUSTED_PROXIES: expected"),
        ({"TOOMBOS_NO_SUCH_SETTING": "1"}, "TOOMBOS_NO_SUCH_SETTING: unknown setting"),
    ],
)
def test_bad_env_value_names_the_key_and_what_was_expected(
    env: dict[str, str], message: str
) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.load(env)
    assert str(caught.value).startswith(message)


def test_every_setting_refuses_a_bad_value_by_its_name() -> None:
    """A value no parser accepts (a TOML table) fails for every key, naming it."""
    for spec in SPECS:
        with pytest.raises(SettingsError) as caught:
            Settings.load({}, overrides={spec.name: {"a": 1}})
        assert str(caught.value).startswith(f"{spec.flag}: expected {spec.expected}")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("port = 'x'\n", "port (in {path}): expected an integer from 0 to 65535, got 'x'"),
        ("port = true\n", "port (in {path}): expected an integer"),
        ("port = 8080.9\n", "port (in {path}): expected an integer"),  # not cut to 8080
        ("job_workers = 2.0\n", "job_workers (in {path}): expected an integer"),
        ("access_log = 3\n", "access_log (in {path}): expected true or false"),
        ("host = ['a']\n", "host (in {path}): expected a host name or IP address"),
        ("prot = 8000\n", "prot: unknown setting (in {path})"),
        ("port = \n", "--config: {path} is not valid TOML"),
    ],
)
def test_bad_toml_names_the_key_and_the_file(tmp_path: Path, text: str, message: str) -> None:
    config = write(tmp_path / "edge.toml", text)
    with pytest.raises(SettingsError) as caught:
        Settings.load({}, config)
    assert str(caught.value).startswith(message.format(path=config))


def test_missing_config_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"--config: cannot read .*nope\.toml"):
        Settings.load({}, tmp_path / "nope.toml")


def test_bad_flag_names_the_flag() -> None:
    with pytest.raises(SettingsError, match=r"^--db-readers: expected an integer from 1 to 16"):
        Settings.load({}, overrides={"db_readers": "many"})


def test_every_setting_has_help_a_default_and_a_field() -> None:
    names = [spec.name for spec in SPECS]
    assert len(names) == len(set(names))
    # ``supervisor`` is what systemd passed (NOTIFY_SOCKET …), not a setting of its own.
    assert set(names) == set(Settings.__dataclass_fields__) - {"supervisor"}
    for env, default, help_text in defaults_table():
        assert env.startswith("TOOMBOS_") and help_text.endswith(".")
        assert default is not None


def test_defaults_parse_back_to_themselves() -> None:
    """The table's default, fed back through its own parser, gives the default: no drift."""
    base = Settings()
    for spec, (env, shown, _help) in zip(SPECS, defaults_table(), strict=True):
        if shown:
            assert getattr(Settings.load({env: shown}), spec.name) == getattr(base, spec.name)


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "toombos_edge", *args],
        capture_output=True,
        text=True,
        timeout=30,
        env={**clean_env(), **(env or {})},
        check=False,
    )


def test_check_accepts_a_good_config(tmp_path: Path) -> None:
    config = write(tmp_path / "good.toml", 'port = 8123\nlog_format = "text"\n')
    done = run_cli("check", "--config", str(config), "--host", "127.0.0.5")
    assert done.returncode == 0, done.stderr
    assert "settings are valid" in done.stdout
    assert "port = 8123" in done.stdout and "host = '127.0.0.5'" in done.stdout
    assert not (tmp_path / "data").exists()  # check starts nothing, creates nothing


def test_check_refuses_a_bad_config_and_names_the_key(tmp_path: Path) -> None:
    config = write(tmp_path / "bad.toml", "db_readers = 99\n")
    done = run_cli("check", "--config", str(config))
    assert done.returncode == 2
    assert f"db_readers (in {config}): expected an integer from 1 to 16, got 99" in done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"TOOMBOS_PORT": "ten"}, "TOOMBOS_PORT: expected an integer from 0 to 65535, got 'ten'"),
        ({"TOOMBOS_NO_SUCH_SETTING": "1"}, "TOOMBOS_NO_SUCH_SETTING: unknown setting"),
    ],
)
def test_check_refuses_a_bad_environment_variable(env: dict[str, str], message: str) -> None:
    done = run_cli("check", env=env)
    assert done.returncode == 2
    assert message in done.stderr and "Traceback" not in done.stderr


def test_a_shared_dir_is_for_several_nodes_on_postgresql() -> None:
    with pytest.raises(SettingsError, match=r"^TOOMBOS_SHARED_DIR: .*TOOMBOS_DATABASE_URL"):
        Settings.load({"TOOMBOS_SHARED_DIR": "/mnt/toombos"})
    settings = Settings.load({"TOOMBOS_SHARED_DIR": "/mnt/toombos",
                              "TOOMBOS_DATABASE_URL": "postgresql://edge@db/edge"})
    assert settings.shared_dir == Path("/mnt/toombos")
    assert Settings.load({"TOOMBOS_SHARED_DIR": ""}).shared_dir is None
    assert Settings.load({}).public()["shared_dir"] == ""
