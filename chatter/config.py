"""Configuration: the environment, with command-line flags for the same.

Every setting has one name in the environment (``PORT``) and one flag
(``--port``); a flag wins. `Settings` is frozen: it is read once at start-up and
handed to whatever needs it, never looked up from a global.
"""

from __future__ import annotations

import enum
import ipaddress
import logging
import os
import re
import secrets
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

from chatter.errors import ConfigError
from chatter.throttle import Limit, NameClaimLimits

T = TypeVar("T")

__all__ = [
    "DEFAULT_PORT",
    "Environment",
    "LogLevel",
    "Settings",
    "default_data_dir",
    "generated_node_id",
]

DEFAULT_PORT = 4000
DEFAULT_HOST = "127.0.0.1"
DEFAULT_MAX_CONNECTIONS = 10_000
DEFAULT_MAX_CONNECTIONS_PER_IP = 100
DEFAULT_HEADER_TIMEOUT_S = 10.0
DEFAULT_MAX_PENDING_PER_IP = 64
DEFAULT_MAX_WATCHERS = 100
DEFAULT_MAX_WATCHERS_PER_IP = 8
DEFAULT_NAME_CLAIMS_PER_IP = 12
MAX_RESTART_DELAY_MS = 10_000
"""The longest restart delay a lesson may ask for: long enough to watch a
node restarting, short enough that the tree is never down for long."""

logger = logging.getLogger(__name__)


class Environment(enum.Enum):
    """Where Chatter runs; prod is strict about secrets and chaos."""

    DEV = "dev"
    TEST = "test"
    PROD = "prod"


class LogLevel(enum.Enum):
    """How much a node logs. At info, a line per lifecycle event of the server
    and its tree; at debug, also each session's opening (with the client's
    address) and closing, which at thousands of connections is most of the log
    and a measurable share of a connection's cost."""

    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"

    @property
    def number(self) -> int:
        """The `logging` module's level."""
        level: int = getattr(logging, self.name)
        return level


def default_data_dir() -> Path:
    """``$XDG_DATA_HOME/chatter`` (``~/.local/share/chatter``): outside any checkout."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "chatter"


_NODE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def generated_node_id() -> str:
    """A node id for a node not given one: the host's name and six random hex
    digits, so that a node started again is a new node."""
    host = re.sub(r"[^A-Za-z0-9._-]", "-", socket.gethostname())[:50].strip("-.") or "node"
    return f"{host}-{secrets.token_hex(3)}"


@dataclass(frozen=True)
class Settings:
    """Everything Chatter is configured with."""

    database_url: str | None = None
    """``DATABASE_URL``: use this PostgreSQL server. None: start the embedded
    one (dev and test only: required in prod)."""
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
    log_level: LogLevel = LogLevel.INFO
    """``CHATTER_LOG_LEVEL``: debug, info, warning or error."""
    chaos: bool = False
    """``CHATTER_CHAOS``: allow killing actors over HTTP even in prod."""
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    """``CHATTER_MAX_CONNECTIONS``: WebSocket connections in total."""
    max_connections_per_ip: int = DEFAULT_MAX_CONNECTIONS_PER_IP
    """``CHATTER_MAX_CONNECTIONS_PER_IP``: WebSocket connections per client address."""
    header_timeout_s: float = DEFAULT_HEADER_TIMEOUT_S
    """``CHATTER_HEADER_TIMEOUT_S``: how long a client has to send a request's
    headers, and how long a connection may sit idle between requests."""
    max_pending_per_ip: int = DEFAULT_MAX_PENDING_PER_IP
    """``CHATTER_MAX_PENDING_PER_IP``: sockets one address may hold while their
    request headers are not yet complete (trusted proxies are not capped)."""
    max_watchers: int = DEFAULT_MAX_WATCHERS
    """``CHATTER_MAX_WATCHERS``: sockets on ``/api/supervision/events`` in total."""
    max_watchers_per_ip: int = DEFAULT_MAX_WATCHERS_PER_IP
    """``CHATTER_MAX_WATCHERS_PER_IP``: sockets on ``/api/supervision/events`` per address."""
    name_claims_per_ip: int = DEFAULT_NAME_CLAIMS_PER_IP
    """``CHATTER_NAME_CLAIMS_PER_IP``: names every connection from one address
    may claim at once, together; the allowance refills at half this many a
    minute (12: 6 a minute). Raise it for load generators on one address."""
    trusted_proxies: tuple[str, ...] = ()
    """``CHATTER_TRUSTED_PROXIES``: comma-separated addresses or networks (CIDR)
    of load balancers. Only a request from one of them may name the client's
    address (``X-Forwarded-For``, or the PROXY protocol)."""
    proxy_protocol: bool = False
    """``CHATTER_PROXY_PROTOCOL``: connections from trusted proxies begin with a
    PROXY protocol header (v1 or v2) naming the client (haproxy's ``send-proxy``)."""
    metrics: bool | None = None
    """``CHATTER_METRICS``: serve ``GET /metrics`` (1/0). None: on in dev and
    test, off in prod, where the counts are not the public's business."""
    metrics_port: int | None = None
    """``CHATTER_METRICS_PORT``: serve ``GET /metrics`` on a listener of its own
    at ``HOST`` and this port, and not on ``PORT`` (for a scraper on a private
    network). None: no such listener."""
    node_id: str = field(default_factory=generated_node_id)
    """``CHATTER_NODE_ID``: this node's name among the nodes sharing the
    database (1 to 64 letters, digits, ``.``, ``_`` or ``-``); by default the
    host's name and a random suffix, new at each start."""
    migrate: bool = True
    """``CHATTER_MIGRATE``: whether ``chatter serve`` brings an older schema to
    its newest itself (under a lock, so nodes starting together migrate once).
    Off: a node refuses to start on an older schema and says to run ``chatter
    migrate``. Either way a newer schema is served with a warning."""
    restart_delay_ms: int = 0
    """``CHATTER_RESTART_DELAY_MS``: for teaching, how long the root supervisor
    waits before restarting a child, so the supervision page shows it
    restarting (0 to `MAX_RESTART_DELAY_MS`; default 0, at once). Honoured in
    dev and test only: ignored in prod, with a warning (`restart_delay_s`)."""

    @property
    def resolved_data_dir(self) -> Path:
        return self.data_dir if self.data_dir is not None else default_data_dir()

    @property
    def name_claims(self) -> NameClaimLimits:
        """The name-claim limits: the contract's per connection, and
        ``name_claims_per_ip`` per address."""
        per_address = Limit(self.name_claims_per_ip, self.name_claims_per_ip / 120)
        return NameClaimLimits(per_address=per_address)

    @property
    def restart_delay_s(self) -> float:
        """The restart delay the tree is to use: `restart_delay_ms` in dev and
        test, none in prod (a production tree restarts at once, as OTP does)."""
        if self.env is Environment.PROD:
            return 0.0
        return self.restart_delay_ms / 1000

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
            log_level=_log_level(env.get("CHATTER_LOG_LEVEL", "info")),
            chaos=bool(_switch(env, "CHATTER_CHAOS")),
            max_connections=_integer(env, "CHATTER_MAX_CONNECTIONS", DEFAULT_MAX_CONNECTIONS),
            max_connections_per_ip=_integer(
                env, "CHATTER_MAX_CONNECTIONS_PER_IP", DEFAULT_MAX_CONNECTIONS_PER_IP
            ),
            header_timeout_s=_number(env, "CHATTER_HEADER_TIMEOUT_S", DEFAULT_HEADER_TIMEOUT_S),
            max_pending_per_ip=_integer(
                env, "CHATTER_MAX_PENDING_PER_IP", DEFAULT_MAX_PENDING_PER_IP
            ),
            max_watchers=_integer(env, "CHATTER_MAX_WATCHERS", DEFAULT_MAX_WATCHERS),
            max_watchers_per_ip=_integer(
                env, "CHATTER_MAX_WATCHERS_PER_IP", DEFAULT_MAX_WATCHERS_PER_IP
            ),
            name_claims_per_ip=_integer(
                env, "CHATTER_NAME_CLAIMS_PER_IP", DEFAULT_NAME_CLAIMS_PER_IP
            ),
            trusted_proxies=_networks(env, "CHATTER_TRUSTED_PROXIES"),
            proxy_protocol=bool(_switch(env, "CHATTER_PROXY_PROTOCOL")),
            metrics=_switch(env, "CHATTER_METRICS"),
            metrics_port=_optional_integer(env, "CHATTER_METRICS_PORT"),
            node_id=env.get("CHATTER_NODE_ID") or generated_node_id(),
            migrate=_switch(env, "CHATTER_MIGRATE") is not False,
            restart_delay_ms=_integer(env, "CHATTER_RESTART_DELAY_MS", 0),
        )
        overrides = {name: value for name, value in flags.items() if value is not None}
        if "data_dir" in overrides:
            overrides["data_dir"] = Path(overrides["data_dir"])
        if isinstance(overrides.get("trusted_proxies"), str):
            overrides["trusted_proxies"] = _networks(
                {"--trusted-proxies": overrides["trusted_proxies"]}, "--trusted-proxies"
            )
        settings = replace(settings, **overrides)
        settings.validate()
        if settings.env is Environment.PROD and settings.restart_delay_ms:
            logger.warning(
                "CHATTER_RESTART_DELAY_MS=%d ignored: slow restarts are for teaching, "
                "in dev and test only; in prod a child is restarted at once",
                settings.restart_delay_ms,
            )
        return settings

    def validate(self) -> None:
        if not _NODE_ID.fullmatch(self.node_id):
            raise ConfigError(
                "CHATTER_NODE_ID must be 1 to 64 letters, digits, '.', '_' or '-'"
                f" (starting with a letter or digit), got {self.node_id!r}"
            )
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"PORT must be 0..65535, got {self.port}")
        if self.metrics_port is not None and not 0 <= self.metrics_port <= 65535:
            raise ConfigError(f"CHATTER_METRICS_PORT must be 0..65535, got {self.metrics_port}")
        if self.metrics_port is not None and self.metrics_port == self.port != 0:
            raise ConfigError(f"CHATTER_METRICS_PORT must differ from PORT ({self.port})")
        if self.max_connections < 1 or self.max_connections_per_ip < 1:
            raise ConfigError("connection limits must be at least 1")
        if self.max_pending_per_ip < 1 or self.max_watchers < 1 or self.max_watchers_per_ip < 1:
            raise ConfigError("connection limits must be at least 1")
        if self.name_claims_per_ip < 1:
            raise ConfigError(
                f"CHATTER_NAME_CLAIMS_PER_IP must be at least 1, got {self.name_claims_per_ip}"
            )
        if not 0 < self.header_timeout_s <= 3600:
            raise ConfigError(
                f"CHATTER_HEADER_TIMEOUT_S must be more than 0 and at most 3600, "
                f"got {self.header_timeout_s}"
            )
        if not 0 <= self.restart_delay_ms <= MAX_RESTART_DELAY_MS:
            raise ConfigError(
                f"CHATTER_RESTART_DELAY_MS must be 0 to {MAX_RESTART_DELAY_MS}, "
                f"got {self.restart_delay_ms}"
            )
        if self.proxy_protocol and not self.trusted_proxies:
            raise ConfigError("CHATTER_PROXY_PROTOCOL needs CHATTER_TRUSTED_PROXIES")
        if self.env is Environment.PROD and not self.secret_key_base:
            raise ConfigError("SECRET_KEY_BASE is required when CHATTER_ENV=prod")
        if self.env is Environment.PROD and not self.database_url:
            raise ConfigError(
                "DATABASE_URL is required when CHATTER_ENV=prod "
                "(the embedded database is for dev and test)"
            )


def _integer(env: Mapping[str, str], name: str, default: int) -> int:
    return _parsed(env, name, default, int, "an integer")


def _number(env: Mapping[str, str], name: str, default: float) -> float:
    return _parsed(env, name, default, float, "a number")


def _parsed(
    env: Mapping[str, str], name: str, default: T, parse: Callable[[str], T], what: str
) -> T:
    """The setting `name` read by `parse`; `default` when unset or empty."""
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return parse(raw)
    except ValueError:
        raise ConfigError(f"{name} must be {what}, got {raw!r}") from None


def _networks(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    """Comma-separated addresses or CIDR networks, each checked, in a canonical form."""
    parts = [part.strip() for part in env.get(name, "").split(",") if part.strip()]
    networks = []
    for part in parts:
        try:
            networks.append(str(ipaddress.ip_network(part, strict=False)))
        except ValueError:
            raise ConfigError(f"{name} must list addresses or networks, got {part!r}") from None
    return tuple(networks)


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


def _log_level(raw: str) -> LogLevel:
    try:
        return LogLevel(raw.lower())
    except ValueError:
        choices = ", ".join(level.value for level in LogLevel)
        raise ConfigError(f"CHATTER_LOG_LEVEL must be one of {choices}, got {raw!r}") from None


def _environment(raw: str) -> Environment:
    try:
        return Environment(raw)
    except ValueError:
        choices = ", ".join(e.value for e in Environment)
        raise ConfigError(f"CHATTER_ENV must be one of {choices}, got {raw!r}") from None
