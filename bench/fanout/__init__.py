"""The fan-out benchmark: Chatter against the Tornado chat demo, in one run.

DESIGN.md's load: 1,000 WebSocket connections to one room, 100 of them
posting, every message broadcast to everyone. For each server, in turn:

- the server runs as a process of its own on 127.0.0.1: Chatter as
  ``python -m chatter serve`` on a fresh database in an embedded PostgreSQL 18
  that the run starts in a temporary directory; the baseline as
  `bench.fanout.baseline_demo`, the shape of Tornado's WebSocket chat demo
  (a class-level set of handlers, ``write_message(dict)`` to each, no database);
- the load generator runs in separate processes (`bench.fanout.loadgen`),
  each holding a share of the connections over a minimal asyncio WebSocket
  client (`bench.fanout.wsclient`), speaking the wire contract: senders join,
  posts carry a ``client_id``, bodies carry the send time;
- steps of rising post rate, each a fixed time, then a drain: per step and
  server, deliveries/s, p50/p99/max latency, loss, server CPU, RSS and threads,
  PostgreSQL's CPU, and each generator process's own CPU (`bench.fanout.report`).

It prints a table with the ratio Chatter/demo per step and the verdict on the
two targets, and writes the figures as JSON (``bench/results/fanout.json``).
``make bench`` runs it in full (a few minutes), ``make bench-quick`` small.
Linux only: costs are read from ``/proc``.
"""
