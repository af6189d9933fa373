// The WebSocket to /ws, kept open: it reconnects by itself with exponential
// backoff and jitter, and each new connection resumes where the last one
// left off (`after` = the highest seq shown, `token` = the identity held).
//
// The wait between tries is short while someone is looking at the page and
// longer while the tab is hidden; the browser coming back online, the tab
// being shown again and a person pressing "Reconnect now" each skip the wait.

import { byId } from "./dom.js";

const BACKOFF_FIRST_MS = 500;
// A person is looking: at most this long between tries, so a restarted server
// has them back within seconds. Equal jitter still spreads a crowd over 2 s.
const BACKOFF_MAX_VISIBLE_MS = 4_000;
// Nobody is looking (a background tab): spare a struggling server.
const BACKOFF_MAX_HIDDEN_MS = 15_000;
const OPEN_TIMEOUT_MS = 10_000; // a handshake that hangs this long is given up and retried
const TICK_MS = 1_000; // the "Retrying in 3 s" countdown's step

/** @typedef {"connecting" | "connected" | "reconnecting" | "offline"} ConnectionState */

/**
 * How long to wait before the next try, after `failures` tries that failed:
 * doubling from half a second, capped lower while the page is `visible`, with
 * equal jitter (half fixed, half random) so that clients dropped together do
 * not all come back in the same instant.
 * @param {number} failures
 * @param {boolean} visible
 * @param {() => number} [random]
 */
function retryDelay(failures, visible, random = Math.random) {
  const cap = visible ? BACKOFF_MAX_VISIBLE_MS : BACKOFF_MAX_HIDDEN_MS;
  const ceiling = Math.min(cap, BACKOFF_FIRST_MS * 2 ** failures);
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}

export class Connection {
  /**
   * @param {object} options
   * @param {() => Record<string, string | number | null | undefined>} options.query
   *   the resume parameters for the next connection
   * @param {(frame: any) => void} options.onFrame each frame the server sends
   * @param {(state: ConnectionState, detail: {retryInMs?: number}) => void} options.onState
   *   `retryInMs` is set while waiting to try again, and absent while a try is under way
   * @param {() => void} [options.onClose] the connection was lost
   */
  constructor({ query, onFrame, onState, onClose = () => {} }) {
    this.query = query;
    this.onFrame = onFrame;
    this.onState = onState;
    this.onClose = onClose;
    /** @type {WebSocket | null} */
    this.socket = null;
    this.started = false;
    this.failures = 0;
    this.retryTimer = 0;
    this.everConnected = false;
    window.addEventListener("online", () => this.retryNow());
    // Offline, the socket is as good as dead, even if it has not noticed yet:
    // drop it now, so what is typed meanwhile waits and goes out on the next one.
    window.addEventListener("offline", () => this.drop());
    // Someone is looking again: a wait sized for a background tab is too long.
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible") this.retryNow();
    });
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
    this.started = true;
    this.connect();
  }

  /** Skip the rest of the wait and try again now (nothing while connected or trying). */
  retryNow() {
    if (!this.started || this.socket !== null) return;
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
    const delay = retryDelay(this.failures, document.visibilityState !== "hidden");
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

/**
 * The connection's status pill (`#connection`) and, while reconnecting, when
 * the next try comes and a "Reconnect now" button (`#reconnect`).
 */
export class ConnectionStatus {
  /**
   * @param {object} [options]
   * @param {() => HTMLElement | null} [options.refocus] where the keyboard goes when
   *   the button it was on goes away (the connection is back)
   */
  constructor({ refocus = () => null } = {}) {
    this.pill = byId("connection");
    this.text = this.pill.querySelector(".connection-text");
    this.area = byId("reconnect");
    this.when = byId("reconnect-when");
    this.button = /** @type {HTMLButtonElement} */ (byId("reconnect-now"));
    this.refocus = refocus;
    this.deadline = 0;
    this.ticker = 0;
  }

  /** Make "Reconnect now" call `retry`. */
  onReconnect(retry) {
    this.button.addEventListener("click", () => retry());
  }

  /**
   * @param {ConnectionState} state
   * @param {{retryInMs?: number}} [detail]
   */
  show(state, detail = {}) {
    this.pill.dataset.state = state;
    if (this.text) this.text.textContent = LABELS[state] ?? state;
    clearInterval(this.ticker);
    const retrying = state === "reconnecting";
    if (!retrying && !this.area.hidden && this.area.contains(document.activeElement)) {
      this.refocus()?.focus();
    }
    this.area.hidden = !retrying;
    if (!retrying) return;
    if (detail.retryInMs === undefined) {
      this.area.dataset.phase = "trying";
      this.when.textContent = "Trying now…";
      return;
    }
    this.area.dataset.phase = "waiting";
    this.deadline = performance.now() + detail.retryInMs;
    this.tick();
    this.ticker = setInterval(() => this.tick(), TICK_MS);
  }

  tick() {
    const seconds = Math.max(1, Math.ceil((this.deadline - performance.now()) / 1000));
    this.when.textContent = `Retrying in ${seconds} s`;
  }
}
