// The live supervision page: the tree from GET /api/supervision, drawn as nested
// boxes, redrawn whenever the event stream (/api/supervision/events) says
// something happened; a running log of those events; Kill buttons where chaos
// is on. Text only (textContent, createElement): an id or a reason never
// becomes markup.
//
// Sessions come in partitions (sessions.0, sessions.1...), each drawn with its
// count and collapsed: opened, it shows the sessions the tree lists and pages
// in more from GET /api/supervision/sessions on demand. Ten thousand sessions
// are never drawn at once; one is found by its user's name instead.

import { byId, h } from "./js/dom.js";

const LOG_LIMIT = 200; // lines kept in the event log
const REFETCH_DEBOUNCE_MS = 100; // a burst of events redraws the tree once
const BACKOFF_FIRST_MS = 500;
const BACKOFF_MAX_MS = 10_000;
const SESSIONS = "sessions";
const ROOT = "root";
const PAGE = 100; // sessions per "Show more"

const KIND_TEXT = {
  started: "started",
  exited: "exited",
  restarted: "restarted",
  gave_up: "gave up",
};

const main = byId("main");
const treeBox = byId("tree");
const treeStatus = byId("tree-status");
const log = byId("log");
const logEmpty = byId("log-empty");
const logCount = byId("log-count");
const chaosNote = byId("chaos-note");
const findForm = /** @type {HTMLFormElement} */ (byId("find-form"));
const findName = /** @type {HTMLInputElement} */ (byId("find-name"));
const findStatus = byId("find-status");
const found = byId("found");
const connection = byId("connection");
const connectionText = connection.querySelector(".connection-text");

const state = {
  chaos: main.dataset.chaos === "on",
  /** @type {any} */ tree: null,
  /** @type {Set<string>} partitions whose sessions are shown */
  open: new Set(),
  /** @type {Map<string, any[]>} sessions paged in beyond those the tree lists */
  more: new Map(),
  /** @type {string} the name last looked for */
  finding: "",
  /** @type {Map<string, number>} restart counts as last drawn */
  restarts: new Map(),
  /** @type {Set<string>} nodes to flash on the next draw */
  flash: new Set(),
  refetchTimer: 0,
  fetching: false,
  refetchAgain: false,
  /** @type {Map<string, string>} what the last kill of a node said */
  notes: new Map(),
};

// -- the tree --------------------------------------------------------------------------

function scheduleRefetch() {
  clearTimeout(state.refetchTimer);
  state.refetchTimer = setTimeout(refetch, REFETCH_DEBOUNCE_MS);
}

async function refetch() {
  if (state.fetching) {
    state.refetchAgain = true;
    return;
  }
  state.fetching = true;
  try {
    const response = await fetch("/api/supervision", {
      cache: "no-store",
      headers: { Accept: "application/json" },
    });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    state.tree = await response.json();
    await refreshMore();
    treeStatus.textContent = "";
    treeStatus.hidden = true;
    draw();
    if (state.finding) find(state.finding);
  } catch (error) {
    treeStatus.hidden = false;
    treeStatus.textContent = "The tree cannot be read right now. Retrying…";
    setTimeout(scheduleRefetch, 1_000);
  } finally {
    state.fetching = false;
    if (state.refetchAgain) {
      state.refetchAgain = false;
      scheduleRefetch();
    }
  }
}

function draw() {
  const focused = /** @type {HTMLElement | null} */ (document.activeElement);
  const focusKey = focused?.dataset?.focusKey;
  const list = h("ul", { class: "sv-children sv-top" }, drawNode(state.tree, null));
  treeBox.replaceChildren(list);
  state.flash.clear();
  if (focusKey) {
    const again = treeBox.querySelector(`[data-focus-key="${CSS.escape(focusKey)}"]`);
    if (again instanceof HTMLElement) again.focus();
  }
}

/** Whether a supervisor id is a partition of the sessions supervisor. */
function isPartitionId(id) {
  return typeof id === "string" && id.startsWith(`${SESSIONS}.`);
}

/** Who a node is, in words: "room", "session 3f2a…". */
function actorName(node, parent) {
  if (parent && isPartitionId(parent.id)) return sessionName(node.id);
  return node.id;
}

function countText(count) {
  return `${count} ${count === 1 ? "session" : "sessions"}`;
}

// -- sessions beyond those the tree lists ----------------------------------------------

async function fetchSessions(query) {
  const response = await fetch(`/api/supervision/sessions?${new URLSearchParams(query)}`, {
    cache: "no-store",
    headers: { Accept: "application/json" },
  });
  if (!response.ok) throw new Error(`HTTP ${response.status}`);
  return response.json();
}

/** The partition's node in the tree last read. */
function partitionNode(id) {
  const sessions = state.tree?.children?.find((child) => child.id === SESSIONS);
  return sessions?.children?.find((child) => child.id === id);
}

/** Page in the next sessions of a partition, after those shown. */
async function showMore(id) {
  const node = partitionNode(id);
  if (!node) return;
  const shown = (node.children?.length ?? 0) + (state.more.get(id)?.length ?? 0);
  try {
    const page = await fetchSessions({ partition: id, offset: String(shown), limit: String(PAGE) });
    state.more.set(id, [...(state.more.get(id) ?? []), ...page.sessions]);
  } catch (error) {
    state.notes.set(id, "Could not read more sessions. Try again.");
    forgetNote(id);
  }
  draw();
}

/** Read again the sessions paged in, after the tree changed. */
async function refreshMore() {
  for (const [id, extra] of state.more) {
    const node = partitionNode(id);
    if (!node || !state.open.has(id)) {
      state.more.delete(id);
      continue;
    }
    try {
      const offset = String(node.children?.length ?? 0);
      const page = await fetchSessions({ partition: id, offset, limit: String(extra.length) });
      state.more.set(id, page.sessions);
    } catch (error) {
      state.more.delete(id);
    }
  }
}

// -- finding a session by name ---------------------------------------------------------

async function find(name) {
  state.finding = name;
  if (!name) {
    found.replaceChildren();
    findStatus.textContent = "";
    return;
  }
  let answer;
  try {
    answer = await fetchSessions({ name });
  } catch (error) {
    findStatus.textContent = "Sessions cannot be searched right now. Try again.";
    return;
  }
  if (state.finding !== name) return; // a newer search is under way
  found.replaceChildren(
    ...answer.sessions.map((node) => drawNode(node, { id: node.partition }, node.username)),
  );
  const n = answer.sessions.length;
  findStatus.textContent =
    n === 0
      ? `No session here holds a name starting with “${name}”.`
      : `${countText(n)} found for “${name}”.`;
}

findForm.addEventListener("submit", (event) => {
  event.preventDefault();
  find(findName.value.trim());
});

/** A session's id as people read it: "session-2" as is, an opaque id as "session 3f2a…". */
function sessionName(id) {
  return id.startsWith("session") ? shortId(id) : `session ${shortId(id)}`;
}

function shortId(id) {
  return id.length > 14 ? `${id.slice(0, 12)}…` : id;
}

/** A node's box and, below it, its children; `username` names a session found by name. */
function drawNode(node, parent, username = null) {
  const previous = state.restarts.get(node.id);
  const restarted =
    state.flash.has(node.id) || (previous !== undefined && node.restarts > previous);
  state.restarts.set(node.id, node.restarts);

  const isSessions = node.id === SESSIONS;
  const isPartition = parent !== null && parent.id === SESSIONS;
  const isSession = parent !== null && isPartitionId(parent.id);
  const box = h("div", {
    class: `sv-box ${node.kind}${isSession ? " session" : ""}${restarted ? " flash" : ""}`,
    data: { id: node.id, alive: String(node.alive) },
  });

  const icon = h("span", { class: "sv-icon", attrs: { "aria-hidden": "true" } });
  icon.textContent = node.kind === "supervisor" ? "⬡" : "●";

  const title = h("div", { class: "sv-name-row" }, icon);
  const name = username ? `${username} · ${actorName(node, parent)}` : actorName(node, parent);
  title.append(h("span", { class: "sv-name", text: name }));
  if (username) title.append(h("span", { class: "sv-badge partition", text: node.partition }));
  if (node.strategy) title.append(h("span", { class: "sv-badge strategy", text: node.strategy }));
  if (node.restart) title.append(h("span", { class: "sv-badge restart", text: node.restart }));

  const meta = h("div", { class: "sv-meta" });
  meta.append(
    h(
      "span",
      { class: "sv-state", data: { alive: String(node.alive) } },
      h("span", { class: "sv-state-dot", data: { alive: String(node.alive) } }),
      node.alive ? "alive" : "restarting",
    ),
  );
  meta.append(
    h(
      "span",
      {
        class: `sv-restarts${node.restarts > 0 ? " some" : ""}`,
        attrs: { title: "Times its supervisor restarted it" },
      },
      h("span", { class: "sv-restart-count", text: String(node.restarts) }),
      node.restarts === 1 ? " restart" : " restarts",
    ),
  );
  if (node.kind === "supervisor" && !isSessions && !isPartition) {
    meta.append(h("span", { class: "sv-kindword", text: "supervisor" }));
  }

  const body = h("div", { class: "sv-box-main" }, title, meta);
  box.append(body);

  const actions = h("div", { class: "sv-actions" });
  const count = node.count ?? node.children?.length ?? 0;
  if (isSessions) {
    actions.append(
      h("span", { class: "sv-count", text: countText(count), attrs: { id: "sessions-count" } }),
      h("span", {
        class: "sv-count-detail",
        text: `in ${node.partitions ?? node.children?.length ?? 0} partitions`,
      }),
    );
  }
  if (isPartition) {
    const open = state.open.has(node.id);
    actions.append(
      h("span", { class: "sv-count", text: countText(count), data: { countFor: node.id } }),
    );
    const toggle = h(
      "button",
      {
        class: "button ghost small sv-toggle",
        attrs: {
          type: "button",
          "aria-expanded": String(open),
          "aria-controls": `sessions-list-${node.id}`,
          "aria-label": `${open ? "Hide" : "Show"} the sessions of ${node.id}`,
          "data-focus-key": `toggle:${node.id}`,
        },
      },
      h("span", { class: "sv-chevron", attrs: { "aria-hidden": "true" }, text: "▸" }),
      open ? "Hide sessions" : "Show sessions",
    );
    toggle.disabled = count === 0;
    toggle.addEventListener("click", () => {
      if (state.open.has(node.id)) {
        state.open.delete(node.id);
        state.more.delete(node.id);
      } else {
        state.open.add(node.id);
      }
      draw();
    });
    actions.append(toggle);
  }
  if (node.id !== ROOT) actions.append(killButton(node, parent));
  if (actions.childElementCount > 0) box.append(actions);

  const note = state.notes.get(node.id);
  if (note) box.append(h("p", { class: "sv-note", text: note }));

  const item = h("li", { class: `sv-node ${node.kind}` }, box);
  if (isPartition) {
    const open = state.open.has(node.id) && count > 0;
    const shown = open ? [...(node.children ?? []), ...(state.more.get(node.id) ?? [])] : [];
    const list = h("ul", {
      class: "sv-children sv-sessions",
      attrs: { id: `sessions-list-${node.id}`, "aria-label": `Sessions of ${node.id}` },
    });
    for (const child of shown) list.append(drawNode(child, node));
    if (open && count > shown.length) {
      const more = h(
        "button",
        {
          class: "button ghost small sv-show-more",
          attrs: { type: "button", "data-focus-key": `more:${node.id}` },
        },
        `Show ${Math.min(PAGE, count - shown.length)} more`,
      );
      more.addEventListener("click", () => showMore(node.id));
      list.append(
        h(
          "li",
          { class: "sv-more" },
          h("span", { text: `${count - shown.length} more not shown; find one by name above` }),
          more,
        ),
      );
    }
    list.hidden = !open;
    item.append(list);
  } else if ((node.children ?? []).length > 0) {
    const list = h("ul", { class: "sv-children" });
    for (const child of node.children) list.append(drawNode(child, node));
    item.append(list);
  }
  return item;
}

// -- killing ---------------------------------------------------------------------------

function killButton(node, parent) {
  const name = actorName(node, parent);
  const isSession = parent !== null && isPartitionId(parent.id);
  const visible = isSession ? "Kill session" : `Kill ${node.id}`;
  const button = h(
    "button",
    {
      class: "button small sv-kill",
      attrs: {
        type: "button",
        "aria-label": `Kill ${name}`,
        title: `Make ${name} crash from inside`,
        "data-focus-key": `kill:${node.id}`,
      },
    },
    h("span", { class: "sv-kill-icon", attrs: { "aria-hidden": "true" }, text: "✕" }),
    visible,
  );
  button.hidden = !state.chaos;
  button.addEventListener("click", () => kill(node.id, name, button));
  return button;
}

async function kill(id, name, button) {
  button.disabled = true;
  let status = 0;
  try {
    const response = await fetch("/api/supervision/kill", {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify({ id }),
    });
    status = response.status;
  } catch (error) {
    status = 0;
  }
  if (status === 403) {
    chaosOff();
  } else if (status === 202) {
    state.notes.set(id, `Killed ${name}: its supervisor takes it from here.`);
    forgetNote(id);
  } else if (status === 404) {
    state.notes.set(id, `${name} is not running right now.`);
    forgetNote(id);
  } else {
    state.notes.set(id, `Could not kill ${name}. Try again.`);
    forgetNote(id);
  }
  button.disabled = false;
  scheduleRefetch();
}

function forgetNote(id) {
  setTimeout(() => {
    state.notes.delete(id);
    if (state.tree) draw();
  }, 4_000);
}

function chaosOff() {
  state.chaos = false;
  main.dataset.chaos = "off";
  chaosNote.dataset.chaos = "off";
  chaosNote.replaceChildren(
    h("span", { class: "sv-chaos-dot", attrs: { "aria-hidden": "true" } }),
    " Chaos is off: actors cannot be killed from here",
  );
  for (const button of treeBox.querySelectorAll(".sv-kill")) button.hidden = true;
}

// -- the event log ---------------------------------------------------------------------

function clock(seconds) {
  const when = new Date(seconds * 1000);
  return when.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

function eventLine(event) {
  const kind = event.kind;
  const actor = event.child ?? event.supervisor ?? "?";
  const actorText = isPartitionId(event.supervisor) && event.child ? sessionName(actor) : actor;
  const when = new Date(event.time * 1000);
  const line = h("li", { class: "sv-event", data: { kind, actor } });
  line.append(
    h("time", { class: "sv-event-time", text: clock(event.time), attrs: { datetime: when.toISOString() } }),
    h("span", { class: "sv-event-kind", text: KIND_TEXT[kind] ?? kind }),
    h("span", { class: "sv-event-actor", text: actorText }),
  );
  const detail = h("span", { class: "sv-event-detail" });
  if (event.reason) detail.append(h("span", { class: "sv-event-reason", text: event.reason }));
  if (event.supervisor && event.child) {
    detail.append(h("span", { class: "sv-event-by", text: `under ${event.supervisor}` }));
  }
  if (detail.childElementCount > 0) line.append(detail);
  return line;
}

/** Add events (oldest first) to the top of the log; `live` ones flash their node. */
function addEvents(events, live) {
  for (const event of events) {
    log.prepend(eventLine(event));
    if (live && event.kind === "restarted" && event.child) state.flash.add(event.child);
  }
  while (log.childElementCount > LOG_LIMIT) log.lastElementChild?.remove();
  logEmpty.hidden = log.childElementCount > 0;
  const n = log.childElementCount;
  logCount.textContent = n === 0 ? "newest first" : `${n} ${n === 1 ? "event" : "events"} · newest first`;
}

// -- the event stream ------------------------------------------------------------------

let failures = 0;

function setConnection(stateName, text) {
  connection.dataset.state = stateName;
  if (connectionText) connectionText.textContent = text;
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const socket = new WebSocket(`${scheme}//${location.host}/api/supervision/events`);
  let opened = false;
  socket.addEventListener("open", () => {
    opened = true;
    failures = 0;
    setConnection("connected", "Live");
  });
  socket.addEventListener("message", (message) => {
    let frame;
    try {
      frame = JSON.parse(message.data);
    } catch (error) {
      return;
    }
    if (frame.type === "events") {
      log.replaceChildren();
      addEvents(frame.events ?? [], false);
      scheduleRefetch();
    } else if (frame.type === "event" && frame.event) {
      addEvents([frame.event], true);
      scheduleRefetch();
    }
  });
  socket.addEventListener("close", () => {
    failures += 1;
    const wait = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** Math.min(failures - 1, 5));
    setConnection(navigator.onLine ? "reconnecting" : "offline", opened || failures > 1 ? "Reconnecting…" : "Connecting…");
    setTimeout(connect, wait * (0.75 + Math.random() * 0.5));
  });
}

setConnection("connecting", "Connecting…");
refetch();
connect();
