"""The test harness every test group shares (fixtures live in the conftest files):

- `server`: `ChatServer`, Chatter in the test's process, built by the factory
  ``chatter serve`` uses (`web.server.start`) on an event loop of its own thread;
- `client`: `Client`, a WebSocket client that speaks the wire contract;
- `raw`: `RawSocket`, a WebSocket client on a plain socket that misbehaves on purpose;
- `honest`: `HonestClient` and `attack`, someone chatting through an attack;
- `process`: `ServeProcess`, ``chatter serve`` as a real process;
- `http`: requests whatever their status, and ``/healthz``;
- `data`: what tests seed into the database and read back from it;
- `waiting`: `EventLog` for supervision events, and `eventually` for what no
  event announces. Tests wait on events or futures, never on a fixed sleep.
"""
