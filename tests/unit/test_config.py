"""Settings come from the environment, flags win, and bad values are named."""

from __future__ import annotations

from pathlib import Path

import pytest

from chatter.config import Environment, Settings
from chatter.errors import ConfigError


def test_defaults() -> None:
    settings = Settings.from_env({})
    assert (settings.host, settings.port, settings.env) == ("127.0.0.1", 4000, Environment.DEV)
    assert settings.database_url is None
    assert (settings.max_connections, settings.max_connections_per_ip) == (10_000, 100)
    assert settings.resolved_data_dir.name == "chatter"


def test_environment_is_read_and_flags_win() -> None:
    env = {
        "PORT": "4100",
        "HOST": "0.0.0.0",
        "DATABASE_URL": "postgresql://db/chat",
        "CHATTER_DATA_DIR": "/srv/chatter",
        "CHATTER_ENV": "test",
        "CHATTER_CHAOS": "1",
        "CHATTER_MAX_CONNECTIONS_PER_IP": "5000",
    }
    settings = Settings.from_env(env, port=4200, data_dir="/elsewhere", host=None)
    assert settings.port == 4200
    assert settings.host == "0.0.0.0"
    assert settings.data_dir == Path("/elsewhere")
    assert settings.database_url == "postgresql://db/chat"
    assert settings.env is Environment.TEST
    assert settings.chaos
    assert settings.max_connections_per_ip == 5000


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PORT": "http"}, "PORT must be an integer, got 'http'"),
        ({"PORT": "70000"}, "PORT must be 0..65535"),
        ({"CHATTER_ENV": "staging"}, "CHATTER_ENV must be one of dev, test, prod"),
        ({"CHATTER_ENV": "prod"}, "SECRET_KEY_BASE is required"),
        ({"CHATTER_MAX_CONNECTIONS": "0"}, "connection limits must be at least 1"),
    ],
)
def test_bad_settings_are_refused_with_the_setting_named(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(env)
