// The live supervision page, written for a newcomer: the tree from
// GET /api/supervision, drawn as nested boxes, redrawn whenever the event stream
// (/api/supervision/events) says something happened; a running log of those
// events; Kill buttons where chaos is on, each saying beforehand what a kill
// will do. Text only (textContent, createElement): an id, a name or a reason
// never becomes markup.
//
// A restart is over in milliseconds, so each one stays highlighted on its node
// for RESTART_SHOWN_MS, with its count and the supervisor's intensity ("2 of 3
// in 5 s"); a server started with CHATTER_RESTART_DELAY_MS (dev and test) keeps
// the child restarting long enough to be seen. When the root gives up, the
// whole process exits: the page says the server is gone, and says so again
// when it is back.
//
// Sessions come in partitions (sessions.0, sessions.1...), each drawn with its
// count and collapsed: opened, it shows the sessions the tree lists, each named
// by who holds it (a username, or "viewer"), and pages in more from
// GET /api/supervision/sessions on demand. Their starts and normal exits are
// folded into one line of the log.

import { byId, h } from "./js/dom.js";

const LOG_LIMIT = 200; // lines kept in the event log
const REFETCH_DEBOUNCE_MS = 100; // a burst of events redraws the tree once
const BACKOFF_FIRST_MS = 500;
const BACKOFF_MAX_MS = 3_000; // one socket per open page: a lesson should not wait long
const RESTART_SHOWN_MS = 4_000; // how long a restart stays highlighted on its node
const TICK_MS = 500; // how often the intensity's window is read again
const SESSIONS = "sessions";
const ROOT = "root";
const PAGE = 100; // sessions per "Show more"
const ASKER = "the supervision page"; // who the server's log says asked for a kill

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
const delayNote = byId("restart-delay");
const serverStatus = byId("server-status");
const serverTitle = byId("server-title");
const serverText = byId("server-text");
const findForm = /** @type {HTMLFormElement} */ (byId("find-form"));
const findName = /** @type {HTMLInputElement} */ (byId("find-name"));
const findStatus = byId("find-status");
const found = byId("found");
const connection = byId("connection");
const connectionText = connection.querySelector(".connection-text");

const state = {
  chaos: main.dataset.chaos === "on",
  /** @type {any} */ tree: null,
  /** @type {number} when the tree was read (performance.now()), for the intensity's ages */
  treeRead: 0,
  /** @type {Set<string>} partitions whose sessions are shown */
  open: new Set(),
  /** @type {Map<string, any[]>} sessions paged in beyond those the tree lists */
  more: new Map(),
  /** @type {string} the name last looked for */
  finding: "",
  /** @type {Map<string, number>} until when (performance.now()) a node shows its restart */
  restarted: new Map(),
  /** @type {Set<string>} nodes that flash on the next draw: a restart just heard of */
  flash: new Set(),
  refetchTimer: 0,
  fetching: false,
  refetchAgain: false,
  /** @type {Map<string, string>} what the last kill of a node said */
  notes: new Map(),
  /** @type {"up" | "down" | "back"} the server process, as far as this page knows */
  server: "up",
  /** @type {boolean} the root gave up: the process is exiting */
  gaveUp: false,
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
    state.treeRead = performance.now();
    await refreshMore();
    treeStatus.textContent = "";
    treeStatus.hidden = true;
    showDelay(state.tree.restart_delay_ms ?? 0);
    draw();
    if (state.finding) find(state.finding);
  } catch (error) {
    treeStatus.hidden = false;
    treeStatus.textContent =
      state.server === "down"
        ? "The server is gone: no tree to read until it is back."
        : "The tree cannot be read right now. Retrying…";
    if (state.server !== "down") setTimeout(scheduleRefetch, 1_000);
  } finally {
    state.fetching = false;
    if (state.refetchAgain) {
      state.refetchAgain = false;
      scheduleRefetch();
    }
  }
}

function showDelay(ms) {
  delayNote.hidden = ms <= 0;
  delayNote.textContent =
    ms > 0
      ? `Restarts are slowed down to ${(ms / 1000).toLocaleString()} s for the lesson ` +
        "(CHATTER_RESTART_DELAY_MS): watch a killed actor stay “restarting”."
      : "";
}

function draw() {
  if (!state.tree) return;
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

/** Who a session is: its user's name, "viewer" when it holds none, or its id when not known. */
function sessionWho(node, username = node.username) {
  if (typeof username === "string") return username;
  if (username === null) return "viewer";
  return null;
}

/** Who a node is, in words: "room", "ann · session-3", "viewer · session-4". */
function actorName(node, parent, username = node.username) {
  if (parent && isPartitionId(parent.id)) {
    const who = sessionWho(node, username);
    return who === null ? sessionName(node.id) : `${who} · ${sessionName(node.id)}`;
  }
  return node.id;
}

function countText(count) {
  return `${count} ${count === 1 ? "session" : "sessions"}`;
}

// -- the restart intensity -------------------------------------------------------------

/** The restarts of `supervisor` that count now: the ages it gave, grown by the time since. */
function restartsNow(supervisor) {
  const intensity = supervisor?.intensity;
  if (!intensity) return null;
  const since = (performance.now() - state.treeRead) / 1000;
  const counting = (intensity.ages_s ?? []).filter((age) => age + since <= intensity.max_seconds);
  return { used: counting.length, max: intensity.max_restarts, seconds: intensity.max_seconds };
}

function intensityText(now) {
  return `${now.used} of ${now.max} in ${now.seconds.toLocaleString()} s`;
}

/** What pressing Kill on `node` will do, said before it is pressed. */
function prediction(node, parent) {
  if (!parent) return "";
  const isSession = isPartitionId(parent.id);
  if (isSession || node.restart === "temporary") {
    return (
      "Kill: not restarted (temporary). " +
      "Its tab's connection closes and the tab reconnects as a new session."
    );
  }
  const now = restartsNow(parent);
  const what =
    node.id === SESSIONS
      ? `${parent.id} restarts it with its partitions: every session closes and every tab reconnects`
      : isPartitionId(node.id)
        ? `${parent.id} restarts it: its sessions close and their tabs reconnect`
        : `${parent.id} restarts it (${node.restart ?? "permanent"})`;
  if (!now) return `Kill: ${what}.`;
  if (now.used + 1 > now.max) {
    const whole =
      parent.id === ROOT
        ? "root gives up, stops every actor, and the whole process exits"
        : `${parent.id} gives up and exits; its own supervisor decides`;
    return `Kill: one restart too many (${now.max} in ${now.seconds.toLocaleString()} s already): ${whole}.`;
  }
  return `Kill: ${what}, restart ${now.used + 1} of ${now.max} in ${now.seconds.toLocaleString()} s.`;
}

/** Read the intensity windows again as time passes: the budget comes back, predictions change. */
function tick() {
  if (!state.tree) return;
  const now = performance.now();
  let expired = false;
  for (const [id, until] of state.restarted) {
    if (until <= now) {
      state.restarted.delete(id);
      expired = true;
    }
  }
  for (const element of treeBox.querySelectorAll("[data-intensity-of]")) {
    const supervisor = findNode(state.tree, element.getAttribute("data-intensity-of"));
    const counted = restartsNow(supervisor);
    if (counted && element.textContent !== restartsLine(counted)) {
      expired = true; // the window moved: redraw the predictions too
    }
  }
  if (expired) draw();
}

function restartsLine(now) {
  return `restarts used: ${intensityText(now)}`;
}

function findNode(node, id) {
  if (!node) return null;
  if (node.id === id) return node;
  for (const child of node.children ?? []) {
    const hit = findNode(child, id);
    if (hit) return hit;
  }
  return null;
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
function drawNode(node, parent, username = node.username) {
  const isSessions = node.id === SESSIONS;
  const isPartition = parent !== null && parent.id === SESSIONS;
  const isSession = parent !== null && isPartitionId(parent.id);
  const restarted = (state.restarted.get(node.id) ?? 0) > performance.now();
  const restarting = !node.alive && (node.restarting || parent !== null) && !isSession;
  const box = h("div", {
    class:
      `sv-box ${node.kind}${isSession ? " session" : ""}` +
      `${restarted ? " restarted" : ""}${state.flash.has(node.id) ? " flash" : ""}`,
    data: { id: node.id, alive: String(node.alive) },
  });

  const icon = h("span", { class: "sv-icon", attrs: { "aria-hidden": "true" } });
  icon.textContent = node.kind === "supervisor" ? "⬡" : "●";

  const title = h("div", { class: "sv-name-row" }, icon);
  title.append(h("span", { class: "sv-name", text: actorName(node, parent, username) }));
  if (isSession && !parent.children) {
    title.append(h("span", { class: "sv-badge partition", text: node.partition }));
  }
  if (node.strategy) title.append(badge("strategy", node.strategy));
  if (node.restart) title.append(badge("restart", node.restart));

  const meta = h("div", { class: "sv-meta" });
  meta.append(
    h(
      "span",
      { class: "sv-state", data: { alive: String(node.alive) } },
      h("span", { class: "sv-state-dot", data: { alive: String(node.alive) } }),
      node.alive ? "alive" : restarting ? "restarting…" : "not running",
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
  if (node.kind === "supervisor" && node.intensity) {
    const now = restartsNow(node);
    if (now) {
      meta.append(
        h("span", {
          class: `sv-intensity${now.used >= now.max ? " spent" : now.used > 0 ? " some" : ""}`,
          text: restartsLine(now),
          attrs: { "data-intensity-of": node.id, title: "Its restart intensity, as of now" },
        }),
      );
    }
  }
  if (node.kind === "supervisor" && !isSessions && !isPartition) {
    meta.append(h("span", { class: "sv-kindword", text: "supervisor" }));
  }

  const body = h("div", { class: "sv-box-main" }, title, meta);
  box.append(body);

  if (restarted) {
    const now = restartsNow(parent);
    const text = now
      ? `↻ restarted · ${intensityText(now)}`
      : `↻ restarted (restart ${node.restarts})`;
    box.append(h("p", { class: "sv-restart-event", text, attrs: { role: "note" } }));
  }

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
  let predictId = "";
  if (node.id !== ROOT && state.chaos && node.alive) {
    predictId = `predict-${node.id}${parent?.children ? "" : "-found"}`;
    actions.append(killButton(node, parent, username, predictId));
  }
  if (actions.childElementCount > 0) box.append(actions);
  if (predictId) {
    box.append(
      h("p", { class: "sv-predict", text: prediction(node, parent), attrs: { id: predictId } }),
    );
  }

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

/** A strategy or restart-type badge, linking to the legend's explanation of the word. */
function badge(kind, word) {
  const known = document.getElementById(`word-${word}`);
  if (!known) return h("span", { class: `sv-badge ${kind}`, text: word });
  return h("a", {
    class: `sv-badge ${kind}`,
    text: word,
    attrs: { href: `#word-${word}`, title: `What ${word} means` },
  });
}

// -- killing ---------------------------------------------------------------------------

/** Whether killing `node` now is one restart too many for the root: the process will exit. */
function endsTheProcess(node, parent) {
  if (!parent || parent.id !== ROOT || node.restart === "temporary") return false;
  const now = restartsNow(parent);
  return now !== null && now.used + 1 > now.max;
}

function killButton(node, parent, username, predictId) {
  const name = actorName(node, parent, username);
  const isSession = parent !== null && isPartitionId(parent.id);
  const visible = isSession ? "Kill session" : `Kill ${node.id}`;
  const label = isSession ? `Kill session ${name}` : `Kill ${name}`;
  const button = h(
    "button",
    {
      class: "button small sv-kill",
      attrs: {
        type: "button",
        "aria-label": label,
        "aria-describedby": predictId,
        title: `Make ${name} crash from inside`,
        "data-focus-key": `kill:${node.id}`,
      },
    },
    h("span", { class: "sv-kill-icon", attrs: { "aria-hidden": "true" }, text: "✕" }),
    visible,
  );
  button.addEventListener("click", () => kill(node.id, name, button, endsTheProcess(node, parent)));
  return button;
}

async function kill(id, name, button, lastStraw) {
  button.disabled = true;
  let status = 0;
  try {
    const response = await fetch("/api/supervision/kill", {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify({ id, by: ASKER }),
    });
    status = response.status;
  } catch (error) {
    status = 0;
  }
  if (status === 403) {
    chaosOff();
  } else if (status === 202) {
    if (lastStraw) state.gaveUp = true; // the root is giving up: the socket closing is the process exiting
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
    draw();
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
  draw();
}

// -- the event log ---------------------------------------------------------------------

function clock(seconds) {
  const when = new Date(seconds * 1000);
  return when.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

const INJECTED = "crashed: InjectedCrash: ";

/** How an exit reads: "normal" and "shutdown" are normal exits, shown calm. */
function exitTone(reason) {
  const text = reason ?? "";
  if (text === "normal" || text.startsWith("shutdown")) return "normal";
  if (text.startsWith(INJECTED)) return "killed";
  return "crash";
}

/** A session's start or normal exit: noise, folded into one line. */
function isSessionNoise(event) {
  if (!isPartitionId(event.supervisor) || !event.child) return false;
  return event.kind === "started" || (event.kind === "exited" && exitTone(event.reason) === "normal");
}

function eventLine(event) {
  const kind = event.kind;
  const actor = event.child ?? event.supervisor ?? "?";
  const when = new Date(event.time * 1000);
  let actorText = actor;
  if (isPartitionId(event.supervisor) && event.child) {
    // A session is named by who held it, as the tree last read showed it.
    const known = findNode(partitionNode(event.supervisor), event.child);
    actorText = known ? actorName(known, { id: event.supervisor }) : sessionName(actor);
  }
  const tone = kind === "exited" ? exitTone(event.reason) : kind;
  const line = h("li", { class: "sv-event", data: { kind, actor, tone } });
  let kindText = KIND_TEXT[kind] ?? kind;
  if (tone === "killed") kindText = "killed";
  line.append(
    h("time", { class: "sv-event-time", text: clock(event.time), attrs: { datetime: when.toISOString() } }),
    h("span", { class: "sv-event-kind", text: kindText }),
    h("span", { class: "sv-event-actor", text: actorText }),
  );
  const detail = h("span", { class: "sv-event-detail" });
  if (event.reason) {
    const reason = tone === "killed" ? `on purpose, ${event.reason.slice(INJECTED.length)}` : event.reason;
    detail.append(h("span", { class: "sv-event-reason", text: reason }));
  }
  if (event.supervisor && event.child) {
    detail.append(h("span", { class: "sv-event-by", text: `under ${event.supervisor}` }));
  }
  if (kind === "gave_up" && event.supervisor === ROOT) {
    detail.append(
      h("span", { class: "sv-event-reason", text: "The root has no supervisor: the process exits." }),
    );
  }
  if (detail.childElementCount > 0) line.append(detail);
  return line;
}

/** The folded line of session starts and normal exits, counted; a new one after other lines. */
function foldSessionNoise(event) {
  let line = log.firstElementChild;
  if (!(line instanceof HTMLElement) || line.dataset.kind !== "sessions") {
    line = h("li", { class: "sv-event sv-folded", data: { kind: "sessions", started: "0", ended: "0" } });
    line.append(
      h("time", { class: "sv-event-time" }),
      h("span", { class: "sv-event-kind", text: "sessions" }),
      h("span", { class: "sv-event-actor sv-folded-text" }),
      h("span", {
        class: "sv-event-detail",
        text: "each tab that opens or closes is a session starting or ending",
      }),
    );
    log.prepend(line);
  }
  const key = event.kind === "started" ? "started" : "ended";
  line.dataset[key] = String(Number(line.dataset[key]) + 1);
  const started = Number(line.dataset.started);
  const ended = Number(line.dataset.ended);
  let text = `${countText(ended)} ended`;
  if (started > 0) text = `${countText(started)} started` + (ended > 0 ? `, ${ended} ended` : "");
  line.querySelector(".sv-folded-text").textContent = text;
  const time = line.querySelector(".sv-event-time");
  const when = new Date(event.time * 1000);
  time.textContent = clock(event.time);
  time.setAttribute("datetime", when.toISOString());
}

/** Add events (oldest first) to the top of the log; `live` ones highlight their node. */
function addEvents(events, live) {
  for (const event of events) {
    if (isSessionNoise(event)) {
      foldSessionNoise(event);
    } else {
      log.prepend(eventLine(event));
    }
    if (live && event.kind === "restarted" && event.child) {
      state.restarted.set(event.child, performance.now() + RESTART_SHOWN_MS);
      state.flash.add(event.child);
    }
    if (live && event.kind === "gave_up" && event.supervisor === ROOT) state.gaveUp = true;
  }
  while (log.childElementCount > LOG_LIMIT) log.lastElementChild?.remove();
  logEmpty.hidden = log.childElementCount > 0;
  const n = log.childElementCount;
  logCount.textContent = n === 0 ? "newest first" : `${n} ${n === 1 ? "line" : "lines"} · newest first`;
}

// -- the server process ----------------------------------------------------------------

/** Say that the server is gone (the process exited, or cannot be reached), or back. */
function showServer(stateName) {
  state.server = stateName;
  serverStatus.hidden = stateName === "up";
  serverStatus.dataset.state = stateName;
  if (stateName === "down") {
    serverTitle.textContent = state.gaveUp
      ? "The root gave up: the whole process exited"
      : "Connection to the server lost";
    serverText.textContent =
      (state.gaveUp
        ? "One restart too many within the root's intensity, and the root has no supervisor " +
          "to decide for it: Chatter exited with status 1. "
        : "The server process is not answering: it exited, or the network is down. ") +
      "In production a process supervisor starts it again (systemd's Restart=on-failure, " +
      "Docker's restart: always); here, run chatter serve again. This page reconnects by itself.";
  } else if (stateName === "back") {
    serverTitle.textContent = "The server is back";
    serverText.textContent =
      "A new process with a new tree: every restart count starts again at 0, and every " +
      "message is still there (each was stored before it was shown).";
  }
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
    if (state.server === "down") {
      state.gaveUp = false;
      state.restarted.clear();
      showServer("back");
    }
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
    if (opened || state.gaveUp) showServer("down");
    if (opened) scheduleRefetch(); // says the tree is gone, if it is
    const wait = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** Math.min(failures - 1, 5));
    setConnection(
      navigator.onLine ? "reconnecting" : "offline",
      opened || failures > 1 ? "Reconnecting…" : "Connecting…",
    );
    setTimeout(connect, wait * (0.75 + Math.random() * 0.5));
  });
}

setConnection("connecting", "Connecting…");
refetch();
connect();
setInterval(tick, TICK_MS);
