"""The ``chatter`` command line.

    chatter serve                   run the chat server (migrating first)
    chatter console                 the server, with a Python shell on its tree
    chatter chaos kill ID           kill an actor of a running server
    chatter chaos random            kill random actors every N seconds, for a while
    chatter migrate                 bring the schema to the newest migration
    chatter db reset                drop everything and migrate again
    chatter db rollback [--steps N] step back N migrations (default 1)
    chatter db seed [--messages N]  demo users and N messages (default 1,000)
    chatter db serve                the embedded PostgreSQL in the foreground, for
                                    several local nodes: prints DATABASE_URL=...
    chatter cluster [--nodes 3]     the database, N nodes and haproxy in front of
                                    them on one machine (docs/CLUSTER.md)

With no ``DATABASE_URL`` (or ``--database-url``), each command starts the
embedded PostgreSQL 18 in the data directory and stops it when done.

This is the process's entry point (``[project.scripts] chatter``, and
``python -m web``), so it sits at the top of the imports: it parses and
dispatches, and what each command does lives below it, in `web.server`,
`web.console`, `web.cluster` and chatter/ (`chatter.database`, `chatter.chaos`, `chatter.seed`).
Nothing in chatter/ imports web/.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence

from chatter import __version__
from chatter.chaos import ChaosError, kill, kill_randomly
from chatter.config import Settings
from chatter.database import migrate, reset, rollback, running_database
from chatter.errors import ConfigError
from chatter.logs import configure_logging
from chatter.seed import seed
from web.cluster import DEFAULT_NODES, MAX_NODES, ClusterPlan, run_cluster
from web.console import run_console
from web.errors import ClusterError
from web.haproxy import find_haproxy
from web.server import serve

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, one subparser per command."""
    parser = argparse.ArgumentParser(
        prog="chatter",
        description="Chatter: a real-time chat room on an OTP-style supervision tree.",
    )
    parser.add_argument("--version", action="version", version=f"chatter {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    def with_database_flags(sub: argparse.ArgumentParser) -> argparse.ArgumentParser:
        sub.add_argument("--database-url", help="PostgreSQL URL (env DATABASE_URL)")
        sub.add_argument("--data-dir", help="embedded database directory (env CHATTER_DATA_DIR)")
        return sub

    serve = with_database_flags(commands.add_parser("serve", help="run the chat server"))
    serve.add_argument("--host", help="address to listen on (env HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (env PORT, default 4000)")
    serve.add_argument(
        "--node-id",
        help="this node's name among those sharing the database (env CHATTER_NODE_ID;"
        " default: the host's name and a random suffix)",
    )
    serve.add_argument(
        "--max-connections",
        type=int,
        help="WebSocket connections in all (env CHATTER_MAX_CONNECTIONS)",
    )
    serve.add_argument(
        "--max-connections-per-ip",
        type=int,
        help="WebSocket connections per address (env CHATTER_MAX_CONNECTIONS_PER_IP)",
    )
    serve.add_argument(
        "--header-timeout",
        dest="header_timeout_s",
        type=float,
        help="seconds to send request headers (env CHATTER_HEADER_TIMEOUT_S, default 10)",
    )
    serve.add_argument(
        "--max-pending-per-ip",
        type=int,
        help="sockets per address before headers (env CHATTER_MAX_PENDING_PER_IP, default 64)",
    )
    serve.add_argument(
        "--max-watchers",
        type=int,
        help="supervision event sockets in all (env CHATTER_MAX_WATCHERS, default 100)",
    )
    serve.add_argument(
        "--max-watchers-per-ip",
        type=int,
        help="supervision event sockets per address (env CHATTER_MAX_WATCHERS_PER_IP, default 8)",
    )
    serve.add_argument(
        "--name-claims-per-ip",
        type=int,
        help="names one address may claim at once (env CHATTER_NAME_CLAIMS_PER_IP, default 12)",
    )
    serve.add_argument(
        "--trusted-proxies",
        help="load balancer addresses or networks, comma-separated (env CHATTER_TRUSTED_PROXIES)",
    )
    serve.add_argument(
        "--proxy-protocol",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="trusted proxies send a PROXY protocol header (env CHATTER_PROXY_PROTOCOL)",
    )
    serve.add_argument(
        "--metrics",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="serve GET /metrics (env CHATTER_METRICS; default on, off in prod)",
    )
    serve.add_argument(
        "--metrics-port",
        type=int,
        help="serve /metrics on this port only, off the public one (env CHATTER_METRICS_PORT)",
    )
    serve.add_argument(
        "--migrate",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="bring an older schema to the newest before serving (env CHATTER_MIGRATE;"
        " default on); --no-migrate refuses to start on an older schema",
    )
    console = with_database_flags(
        commands.add_parser("console", help="run the server with a Python shell on its tree")
    )
    console.add_argument("--host", help="address to listen on (env HOST, default 127.0.0.1)")
    console.add_argument("--port", type=int, help="port to listen on (env PORT, default 4000)")
    chaos = commands.add_parser("chaos", help="kill actors of a running server")
    chaos.add_argument("--url", default="http://127.0.0.1:4000", help="the server's base URL")
    chaos_commands = chaos.add_subparsers(dest="chaos_command", metavar="HOW", required=True)
    chaos_commands.add_parser("kill", help="kill one actor").add_argument("actor_id")
    randomly = chaos_commands.add_parser("random", help="kill random actors for a while")
    randomly.add_argument("--every", type=float, default=2.0, help="seconds between kills")
    randomly.add_argument("--for", dest="duration", type=float, default=30.0, help="seconds")
    randomly.add_argument("--sessions", action="store_true", help="sessions may be picked too")
    with_database_flags(commands.add_parser("migrate", help="migrate to the newest schema"))
    db = commands.add_parser("db", help="database chores").add_subparsers(
        dest="db_command", metavar="DB_COMMAND", required=True
    )
    with_database_flags(db.add_parser("reset", help="drop everything and migrate again"))
    rollback_parser = with_database_flags(db.add_parser("rollback", help="step back migrations"))
    rollback_parser.add_argument("--steps", type=int, default=1, help="how many (default 1)")
    seed_parser = with_database_flags(db.add_parser("seed", help="demo users and messages"))
    seed_parser.add_argument(
        "--messages", type=int, default=1000, help="how many messages to add (default 1,000)"
    )
    db_serve = db.add_parser(
        "serve",
        help="run the embedded PostgreSQL in the foreground for other local processes",
        description="Start the embedded PostgreSQL 18, migrate, print one line "
        "DATABASE_URL=... on stdout, and run until SIGTERM or SIGINT, then stop it: "
        "the way several local nodes share one embedded database.",
    )
    db_serve.add_argument("--data-dir", help="embedded database directory (env CHATTER_DATA_DIR)")
    _add_cluster_parser(commands)
    return parser


def _add_cluster_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``chatter cluster``: its flags."""
    cluster = commands.add_parser(
        "cluster",
        help="several nodes behind haproxy on this machine (docs/CLUSTER.md)",
        description="Start the embedded PostgreSQL (chatter db serve), N nodes (chatter"
        " serve) sharing it and one SECRET_KEY_BASE, and haproxy in front of them at"
        " 127.0.0.1:PORT; print one line naming the URL and the nodes; run until SIGINT"
        " or SIGTERM, then stop them in reverse order.",
    )
    cluster.add_argument(
        "--nodes",
        type=int,
        default=DEFAULT_NODES,
        help=f"how many nodes, 1 to {MAX_NODES} (default {DEFAULT_NODES})",
    )
    cluster.add_argument(
        "--port", type=int, help="haproxy's port at 127.0.0.1 (env PORT, default 4000)"
    )
    cluster.add_argument(
        "--data-dir",
        help="the embedded database's directory, and haproxy.cfg's (env CHATTER_DATA_DIR)",
    )
    cluster.add_argument(
        "--database-url",
        help="share this PostgreSQL server instead of starting one (env DATABASE_URL)",
    )
    cluster.add_argument(
        "--haproxy", help="the haproxy executable (env HAPROXY; default: on PATH, or /usr/sbin)"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if args.command == "chaos":
        return _chaos(args)
    flags = {
        name: getattr(args, name, None)
        for name in (
            "host",
            "port",
            "max_connections",
            "max_connections_per_ip",
            "header_timeout_s",
            "max_pending_per_ip",
            "max_watchers",
            "max_watchers_per_ip",
            "name_claims_per_ip",
            "trusted_proxies",
            "proxy_protocol",
            "metrics",
            "metrics_port",
            "node_id",
            "migrate",
        )
    }
    try:
        settings = Settings.from_env(
            database_url=getattr(args, "database_url", None), data_dir=args.data_dir, **flags
        )
    except ConfigError as error:
        print(f"chatter: {error}", file=sys.stderr)
        return 2
    configure_logging(settings.env, settings.log_level.number)
    if args.command == "db" and args.db_command == "serve":
        return _db_serve(settings)
    if args.command == "cluster":
        return _cluster(settings, args.nodes, args.haproxy)
    with running_database(settings) as conninfo:
        if args.command == "serve":
            return serve(settings, conninfo)
        if args.command == "console":
            return run_console(settings, conninfo)
        if args.command == "migrate":
            migrate(conninfo)
        elif args.db_command == "reset":
            reset(conninfo)
        elif args.db_command == "rollback":
            rollback(conninfo, args.steps)
        elif args.db_command == "seed":
            return _seed(conninfo, args.messages)
    return 0


def _chaos(args: argparse.Namespace) -> int:
    url = args.url.rstrip("/")
    try:
        if args.chaos_command == "kill":
            print(kill(url, args.actor_id))
        else:
            if args.every <= 0 or args.duration <= 0:
                print("chatter: --every and --for must be positive", file=sys.stderr)
                return 2
            kill_randomly(url, every_s=args.every, for_s=args.duration, sessions=args.sessions)
    except ChaosError as error:
        print(f"chatter chaos: {error}", file=sys.stderr)
        return 1
    return 0


def _db_serve(settings: Settings) -> int:
    """The embedded database, until a signal: its URL on stdout, one line."""
    if settings.database_url:
        print(
            "chatter: db serve runs the embedded PostgreSQL; unset DATABASE_URL to use it",
            file=sys.stderr,
        )
        return 2
    stopped = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopped.set())
    with running_database(settings) as conninfo:
        migrate(conninfo)
        print(f"DATABASE_URL={conninfo}", flush=True)
        while not stopped.wait(1.0):  # looks again each second: a handler runs between bytecodes
            pass
    print("chatter: embedded PostgreSQL stopped", file=sys.stderr)
    return 0


def _cluster(settings: Settings, nodes: int, haproxy: str | None) -> int:
    """Several nodes behind haproxy, until a signal (`web.cluster`)."""
    try:
        plan = ClusterPlan(
            haproxy=find_haproxy(haproxy or os.environ.get("HAPROXY")),
            data_dir=settings.resolved_data_dir,
            nodes=nodes,
            port=settings.port,
            database_url=settings.database_url,
            secret_key_base=settings.secret_key_base,
        )
    except (ConfigError, ClusterError) as error:
        print(f"chatter cluster: {error}", file=sys.stderr)
        return 2
    return run_cluster(plan)


def _seed(conninfo: str, messages: int) -> int:
    if messages < 0:
        print("chatter: --messages must be >= 0", file=sys.stderr)
        return 2
    migrate(conninfo)
    started = time.monotonic()

    def progress(done: int, total: int) -> None:
        rate = done / max(time.monotonic() - started, 1e-9)
        print(f"seeded {done:,} / {total:,} messages ({rate:,.0f}/s)", file=sys.stderr, flush=True)

    seed(conninfo, messages, progress=progress)
    print(f"seeded {messages:,} messages in {time.monotonic() - started:.1f} s", flush=True)
    return 0
