// The WebSocket to /ws, kept open: it reconnects by itself with exponential
// backoff and jitter, and each new connection resumes where the last one
// left off (`after` = the highest seq shown, `token` = the identity held).

const BACKOFF_FIRST_MS = 500;
const BACKOFF_MAX_MS = 15_000; // long enough to spare a struggling server, short enough to wait
const OPEN_TIMEOUT_MS = 10_000; // a handshake that hangs this long is given up and retried

/** @typedef {"connecting" | "connected" | "reconnecting" | "offline"} ConnectionState */

export class Connection {
  /**
   * @param {object} options
   * @param {() => Record<string, string | number | null | undefined>} options.query
   *   the resume parameters for the next connection
   * @param {(frame: any) => void} options.onFrame each frame the server sends
   * @param {(state: ConnectionState, detail: {retryInMs?: number}) => void} options.onState
   * @param {() => void} [options.onClose] the connection was lost
   */
  constructor({ query, onFrame, onState, onClose = () => {} }) {
    this.query = query;
    this.onFrame = onFrame;
    this.onState = onState;
    this.onClose = onClose;
    /** @type {WebSocket | null} */
    this.socket = null;
    this.failures = 0;
    this.retryTimer = 0;
    this.everConnected = false;
    window.addEventListener("online", () => this.retryNow());
    // Offline, the socket is as good as dead, even if it has not noticed yet:
    // drop it now, so what is typed meanwhile waits and goes out on the next one.
    window.addEventListener("offline", () => this.drop());
  }

  get isOpen() {
    return this.socket !== null && this.socket.readyState === WebSocket.OPEN;
  }

  /** Send a frame; false when there is no open connection to send it on. */
  send(frame) {
    if (!this.isOpen) return false;
    this.socket.send(JSON.stringify(frame));
    return true;
  }

  start() {
    this.connect();
  }

  /** Skip the rest of the wait and try again now. */
  retryNow() {
    if (this.socket !== null) return;
    clearTimeout(this.retryTimer);
    this.connect();
  }

  /** Give up the current connection at once; the retries take it from there. */
  drop() {
    const socket = this.socket;
    if (socket !== null) {
      this.socket = null; // its own close event, whenever it comes, is ignored
      socket.close();
      this.onClose();
    }
    this.scheduleRetry();
  }

  /** The server has accepted us (its welcome arrived): connected, and the backoff starts over. */
  settled() {
    this.failures = 0;
    this.setState("connected");
  }

  connect() {
    if (navigator.onLine === false) {
      this.setState("offline");
      return; // the "online" event brings us back
    }
    this.setState(this.everConnected ? "reconnecting" : "connecting");
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const params = new URLSearchParams();
    for (const [name, value] of Object.entries(this.query())) {
      if (value !== null && value !== undefined && value !== "") params.set(name, String(value));
    }
    const search = params.toString() ? `?${params}` : "";
    const socket = new WebSocket(`${scheme}//${location.host}/ws${search}`);
    this.socket = socket;
    const openTimer = setTimeout(() => socket.close(), OPEN_TIMEOUT_MS);

    socket.addEventListener("open", () => {
      clearTimeout(openTimer);
      this.everConnected = true;
    });
    socket.addEventListener("message", (event) => {
      if (this.socket !== socket) return; // dropped
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch {
        return; // not ours to understand
      }
      if (frame && typeof frame.type === "string") this.onFrame(frame);
    });
    socket.addEventListener("close", () => {
      clearTimeout(openTimer);
      if (this.socket !== socket) return;
      this.socket = null;
      this.onClose();
      this.scheduleRetry();
    });
  }

  scheduleRetry() {
    const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** this.failures);
    // Equal jitter (half fixed, half random): clients dropped together do not return together.
    const delay = Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
    this.failures += 1;
    this.everConnected = true;
    this.setState(navigator.onLine === false ? "offline" : "reconnecting", { retryInMs: delay });
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }

  setState(state, detail = {}) {
    this.state = state;
    this.onState(state, detail);
  }
}

const LABELS = {
  connecting: "Connecting…",
  connected: "Connected",
  reconnecting: "Reconnecting…",
  offline: "Offline",
};

/** Show a connection's state in the page's status pill. */
export function showConnectionState(element, state) {
  element.dataset.state = state;
  const text = element.querySelector(".connection-text");
  if (text) text.textContent = LABELS[state] ?? state;
}
