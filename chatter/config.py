"""Configuration: the environment, with command-line flags for the same.

Every setting has one name in the environment (``PORT``) and one flag
(``--port``); a flag wins. `Settings` is frozen: it is read once at start-up and
handed to whatever needs it, never looked up from a global.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from chatter.errors import ConfigError

__all__ = ["DEFAULT_PORT", "Environment", "Settings", "default_data_dir"]

DEFAULT_PORT = 4000
DEFAULT_HOST = "127.0.0.1"
DEFAULT_MAX_CONNECTIONS = 10_000
DEFAULT_MAX_CONNECTIONS_PER_IP = 100


class Environment(enum.Enum):
    """Where Chatter runs; prod is strict about secrets and chaos."""

    DEV = "dev"
    TEST = "test"
    PROD = "prod"


def default_data_dir() -> Path:
    """``$XDG_DATA_HOME/chatter`` (``~/.local/share/chatter``): outside any checkout."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "chatter"


@dataclass(frozen=True)
class Settings:
    """Everything Chatter is configured with."""

    database_url: str | None = None
    """``DATABASE_URL``: use this PostgreSQL server. None: start the embedded one."""
    host: str = DEFAULT_HOST
    """``HOST``: the address to listen on."""
    port: int = DEFAULT_PORT
    """``PORT``: the port to listen on."""
    data_dir: Path | None = None
    """``CHATTER_DATA_DIR``: the embedded database and generated secrets live here."""
    secret_key_base: str | None = None
    """``SECRET_KEY_BASE``: signs identity tokens; required in prod."""
    public_host: str | None = None
    """``CHATTER_HOST``: the public host name, accepted as an Origin."""
    env: Environment = Environment.DEV
    """``CHATTER_ENV``: dev, test or prod."""
    chaos: bool = False
    """``CHATTER_CHAOS``: allow killing actors over HTTP even in prod."""
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    """``CHATTER_MAX_CONNECTIONS``: WebSocket connections in total."""
    max_connections_per_ip: int = DEFAULT_MAX_CONNECTIONS_PER_IP
    """``CHATTER_MAX_CONNECTIONS_PER_IP``: WebSocket connections per client address."""
    metrics: bool | None = None
    """``CHATTER_METRICS``: serve ``GET /metrics`` (1/0). None: on in dev and
    test, off in prod, where the counts are not the public's business."""
    metrics_port: int | None = None
    """``CHATTER_METRICS_PORT``: serve ``GET /metrics`` on a listener of its own
    at ``HOST`` and this port, and not on ``PORT`` (for a scraper on a private
    network). None: no such listener."""

    @property
    def resolved_data_dir(self) -> Path:
        return self.data_dir if self.data_dir is not None else default_data_dir()

    @property
    def metrics_enabled(self) -> bool:
        """Whether ``GET /metrics`` is served at all: on its own port if one is
        set, else as ``CHATTER_METRICS`` says, else everywhere but prod."""
        if self.metrics_port is not None:
            return True
        return self.metrics if self.metrics is not None else self.env is not Environment.PROD

    @property
    def metrics_on_public_port(self) -> bool:
        """Whether the main listener (``PORT``) serves ``GET /metrics``."""
        return self.metrics_enabled and self.metrics_port is None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **flags: Any) -> Settings:
        """Settings from `environ` (default: the process's), then `flags` that are not None."""
        env = os.environ if environ is None else environ
        settings = cls(
            database_url=env.get("DATABASE_URL") or None,
            host=env.get("HOST", DEFAULT_HOST),
            port=_integer(env, "PORT", DEFAULT_PORT),
            data_dir=Path(env["CHATTER_DATA_DIR"]) if env.get("CHATTER_DATA_DIR") else None,
            secret_key_base=env.get("SECRET_KEY_BASE") or None,
            public_host=env.get("CHATTER_HOST") or None,
            env=_environment(env.get("CHATTER_ENV", "dev")),
            chaos=env.get("CHATTER_CHAOS", "") in ("1", "true", "yes"),
            max_connections=_integer(env, "CHATTER_MAX_CONNECTIONS", DEFAULT_MAX_CONNECTIONS),
            max_connections_per_ip=_integer(
                env, "CHATTER_MAX_CONNECTIONS_PER_IP", DEFAULT_MAX_CONNECTIONS_PER_IP
            ),
            metrics=_switch(env, "CHATTER_METRICS"),
            metrics_port=_optional_integer(env, "CHATTER_METRICS_PORT"),
        )
        overrides = {name: value for name, value in flags.items() if value is not None}
        if "data_dir" in overrides:
            overrides["data_dir"] = Path(overrides["data_dir"])
        settings = replace(settings, **overrides)
        settings.validate()
        return settings

    def validate(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"PORT must be 0..65535, got {self.port}")
        if self.metrics_port is not None and not 0 <= self.metrics_port <= 65535:
            raise ConfigError(f"CHATTER_METRICS_PORT must be 0..65535, got {self.metrics_port}")
        if self.metrics_port is not None and self.metrics_port == self.port != 0:
            raise ConfigError(f"CHATTER_METRICS_PORT must differ from PORT ({self.port})")
        if self.max_connections < 1 or self.max_connections_per_ip < 1:
            raise ConfigError("connection limits must be at least 1")
        if self.env is Environment.PROD and not self.secret_key_base:
            raise ConfigError("SECRET_KEY_BASE is required when CHATTER_ENV=prod")


def _integer(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None


def _optional_integer(env: Mapping[str, str], name: str) -> int | None:
    """An integer setting with no default: None when unset."""
    return _integer(env, name, 0) if env.get(name) else None


def _switch(env: Mapping[str, str], name: str) -> bool | None:
    """An on/off setting; None when unset (the default applies)."""
    raw = env.get(name, "").strip().lower()
    if raw == "":
        return None
    if raw in _ON:
        return True
    if raw in _OFF:
        return False
    choices = ", ".join(sorted(_ON | _OFF))
    raise ConfigError(f"{name} must be one of {choices}, got {env[name]!r}")


_ON = frozenset({"1", "true", "yes", "on"})
_OFF = frozenset({"0", "false", "no", "off"})


def _environment(raw: str) -> Environment:
    try:
        return Environment(raw)
    except ValueError:
        choices = ", ".join(e.value for e in Environment)
        raise ConfigError(f"CHATTER_ENV must be one of {choices}, got {raw!r}") from None
