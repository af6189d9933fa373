"""Settings come from the environment, flags win, and bad values are named."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from chatter.config import Environment, LogLevel, Settings
from chatter.errors import ConfigError
from chatter.throttle import Limit, NameClaimLimits


def test_defaults() -> None:
    settings = Settings.from_env({})
    assert (settings.host, settings.port, settings.env) == ("127.0.0.1", 4000, Environment.DEV)
    assert settings.database_url is None
    assert (settings.max_connections, settings.max_connections_per_ip) == (10_000, 100)
    assert settings.resolved_data_dir.name == "chatter"
    assert settings.migrate


def test_a_node_may_be_told_not_to_migrate_by_the_environment_or_the_flag() -> None:
    assert not Settings.from_env({"CHATTER_MIGRATE": "0"}).migrate
    assert not Settings.from_env({}, migrate=False).migrate
    assert Settings.from_env({"CHATTER_MIGRATE": "off"}, migrate=True).migrate


def test_the_log_level_is_info_unless_the_environment_says_otherwise() -> None:
    assert Settings.from_env({}).log_level is LogLevel.INFO
    assert Settings.from_env({"CHATTER_LOG_LEVEL": "DEBUG"}).log_level is LogLevel.DEBUG
    assert Settings.from_env({"CHATTER_LOG_LEVEL": "warning"}).log_level.number == 30


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
        (
            {"CHATTER_ENV": "prod", "SECRET_KEY_BASE": "s" * 32},
            "DATABASE_URL is required when CHATTER_ENV=prod",
        ),
        ({"CHATTER_MIGRATE": "maybe"}, "CHATTER_MIGRATE must be one of"),
        (
            {"CHATTER_LOG_LEVEL": "verbose"},
            "CHATTER_LOG_LEVEL must be one of debug, info, warning, error, got 'verbose'",
        ),
        ({"CHATTER_CHAOS": "please"}, "CHATTER_CHAOS must be one of"),
        ({"CHATTER_MAX_CONNECTIONS": "0"}, "connection limits must be at least 1"),
        ({"CHATTER_TRUSTED_PROXIES": "balancer"}, "CHATTER_TRUSTED_PROXIES must list"),
        ({"CHATTER_PROXY_PROTOCOL": "1"}, "CHATTER_PROXY_PROTOCOL needs CHATTER_TRUSTED"),
        ({"CHATTER_HEADER_TIMEOUT_S": "0"}, "CHATTER_HEADER_TIMEOUT_S must be more than 0"),
        ({"CHATTER_HEADER_TIMEOUT_S": "soon"}, "CHATTER_HEADER_TIMEOUT_S must be a number"),
        ({"CHATTER_MAX_WATCHERS": "0"}, "connection limits must be at least 1"),
        ({"CHATTER_NAME_CLAIMS_PER_IP": "0"}, "CHATTER_NAME_CLAIMS_PER_IP must be at least 1"),
        ({"CHATTER_NODE_ID": "node one"}, "CHATTER_NODE_ID must be 1 to 64 letters"),
        ({"CHATTER_NODE_ID": "-node"}, "CHATTER_NODE_ID must be 1 to 64 letters"),
        ({"CHATTER_NODE_ID": "n" * 65}, "CHATTER_NODE_ID must be 1 to 64 letters"),
        ({"CHATTER_RESTART_DELAY_MS": "-1"}, "CHATTER_RESTART_DELAY_MS must be 0 to 10000"),
        ({"CHATTER_RESTART_DELAY_MS": "10001"}, "CHATTER_RESTART_DELAY_MS must be 0 to 10000"),
        ({"CHATTER_RESTART_DELAY_MS": "1.5"}, "CHATTER_RESTART_DELAY_MS must be an integer"),
    ],
)
def test_bad_settings_are_refused_with_the_setting_named(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(env)


def test_edge_limits_are_read_from_the_environment() -> None:
    settings = Settings.from_env(
        {
            "CHATTER_HEADER_TIMEOUT_S": "2.5",
            "CHATTER_MAX_PENDING_PER_IP": "7",
            "CHATTER_MAX_WATCHERS": "9",
            "CHATTER_MAX_WATCHERS_PER_IP": "3",
            "CHATTER_TRUSTED_PROXIES": "10.0.0.7, 192.168.0.0/16,::1",
            "CHATTER_PROXY_PROTOCOL": "1",
        }
    )
    assert settings.header_timeout_s == 2.5
    assert (settings.max_pending_per_ip, settings.max_watchers) == (7, 9)
    assert settings.max_watchers_per_ip == 3
    assert settings.trusted_proxies == ("10.0.0.7/32", "192.168.0.0/16", "::1/128")
    assert settings.proxy_protocol


def test_trusted_proxies_flag_is_parsed_like_the_environment() -> None:
    settings = Settings.from_env({}, trusted_proxies="127.0.0.1")
    assert settings.trusted_proxies == ("127.0.0.1/32",)


def test_name_claims_per_address_default_to_the_contracts_and_refill_in_two_minutes() -> None:
    assert Settings.from_env({}).name_claims == NameClaimLimits()
    claims = Settings.from_env({"CHATTER_NAME_CLAIMS_PER_IP": "600"}).name_claims
    assert claims.per_address == Limit(600, 5.0)
    assert claims.per_connection == NameClaimLimits().per_connection


def test_a_node_is_named_by_the_environment_or_the_flag() -> None:
    assert Settings.from_env({"CHATTER_NODE_ID": "node-a"}).node_id == "node-a"
    assert Settings.from_env({"CHATTER_NODE_ID": "node-a"}, node_id="node_b.2").node_id == (
        "node_b.2"
    )


def test_a_node_given_no_name_gets_a_new_valid_one_at_each_start() -> None:
    first, second = Settings.from_env({}).node_id, Settings.from_env({}).node_id

    assert first != second
    for node_id in (first, second):
        Settings(node_id=node_id).validate()  # the generated name passes the rule


@pytest.mark.parametrize("env", ["dev", "test"])
def test_a_restart_delay_is_honoured_in_dev_and_test(env: str) -> None:
    settings = Settings.from_env({"CHATTER_ENV": env, "CHATTER_RESTART_DELAY_MS": "1500"})
    assert settings.restart_delay_ms == 1500
    assert settings.restart_delay_s == 1.5
    assert Settings.from_env({"CHATTER_ENV": env}).restart_delay_s == 0.0


def test_a_restart_delay_is_ignored_in_prod_with_a_warning_saying_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    prod = {"CHATTER_ENV": "prod", "SECRET_KEY_BASE": "s" * 32, "DATABASE_URL": "postgresql://x"}
    with caplog.at_level(logging.WARNING, logger="chatter.config"):
        settings = Settings.from_env({**prod, "CHATTER_RESTART_DELAY_MS": "2000"})
    assert settings.restart_delay_s == 0.0
    (record,) = [r for r in caplog.records if r.name == "chatter.config"]
    assert record.levelno == logging.WARNING
    assert "CHATTER_RESTART_DELAY_MS=2000 ignored" in record.getMessage()
    assert "dev and test only" in record.getMessage()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="chatter.config"):
        Settings.from_env(prod)
    assert [r for r in caplog.records if r.name == "chatter.config"] == []
