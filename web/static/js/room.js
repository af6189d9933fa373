// The room: the messages, the people, who you are, and the message box.
//
// Everything comes over one WebSocket (see connection.js), in the frames of the
// wire contract (docs/PROTOCOL.md): a welcome, then messages, presence changes,
// acks and errors. Messages are kept in seq order and shown once each, whatever
// order or how many times they arrive (a resume, an ack racing its broadcast).
// What you type is never lost: a message waits in the outbox, shown as
// "sending", until the server acks it; a connection lost meanwhile resends it
// with the same client_id, which the server stores once.

import { BodyLimit, normalBody } from "./body.js";
import { Connection, ConnectionStatus } from "./connection.js";
import { announce, byId, h } from "./dom.js";
import { hueClass, initial, nameKey, nameProblem, sentence } from "./names.js";
import { People, countsText, onlineText, peoplePopover, renderPeople } from "./people.js";
import { keepTimesFresh, timeElement } from "./time.js";

const SEND_INTERVAL_MS = 500; // the client's own pace: one post per half second
const HISTORY_PAGE = 100; // the most the server sends per history request
const GAP_PAGE_INTERVAL_MS = 100; // filling a gap stays well under the server's flood limit
const AT_BOTTOM_PX = 48; // this close to the bottom counts as reading the newest
const GROUP_WITHIN_MS = 5 * 60_000; // consecutive messages of one person within this read as one
const RETRY_UNAVAILABLE_MAX_MS = 10_000;
const TOKEN_KEY = "chatter.token";
const CLAIM_KEY = "chatter.name";
const OUTBOX_KEY = "chatter.outbox"; // unacked posts survive a reload, resent with their client_id
const DRAFT_KEY = "chatter.draft";

// -- the page ------------------------------------------------------------------------------

const ui = {
  scroller: byId("scroller"),
  list: byId("messages"),
  historyStatus: byId("history-status"),
  historyText: byId("history-text"),
  empty: byId("empty-state"),
  newMessages: /** @type {HTMLButtonElement} */ (byId("new-messages")),
  newMessagesText: byId("new-messages-text"),
  invite: byId("invite"),
  composer: /** @type {HTMLFormElement} */ (byId("composer")),
  identityJoin: byId("identity-join"),
  identityYou: byId("identity-you"),
  nameInput: /** @type {HTMLInputElement} */ (byId("name")),
  joinButton: /** @type {HTMLButtonElement} */ (byId("join-button")),
  youName: byId("you-name"),
  leaveButton: /** @type {HTMLButtonElement} */ (byId("leave-button")),
  nameError: byId("name-error"),
  textarea: /** @type {HTMLTextAreaElement} */ (byId("message")),
  sendButton: /** @type {HTMLButtonElement} */ (byId("send-button")),
  composeError: byId("compose-error"),
  composeCount: byId("compose-count"),
  paceNote: byId("pace-note"),
  people: byId("people"),
  peopleCounts: byId("people-counts"),
  peoplePanel: byId("people-panel"),
  peopleToggle: byId("people-toggle"),
  peopleToggleCount: byId("people-toggle-count"),
  announcer: byId("announcer"),
};

// Who you are is the browser's: every tab of it is the same person, so the
// token and the name are kept in localStorage. What you typed is the tab's: its
// outbox and draft stay in sessionStorage, or another tab would resend this
// tab's posts as its own, and two tabs' drafts would overwrite each other.
const PER_BROWSER = new Set([TOKEN_KEY, CLAIM_KEY]);

const storage = {
  area(key) {
    return PER_BROWSER.has(key) ? localStorage : sessionStorage;
  },
  get(key) {
    try {
      return this.area(key).getItem(key);
    } catch {
      return null;
    }
  },
  set(key, value) {
    try {
      if (value === null) this.area(key).removeItem(key);
      else this.area(key).setItem(key, value);
    } catch {
      // storage disabled: a reload starts as a viewer
    }
  },
};

// -- state -----------------------------------------------------------------------------

const params = new URLSearchParams(location.search);

const state = {
  /** This connection's welcome has arrived. */
  welcomed: false,
  everWelcomed: false,
  /** The `after` the current connection resumed from, or null for a fresh welcome. */
  resumedFrom: /** @type {number | null} */ (null),
  /** The name the server confirmed as yours. */
  me: /** @type {string | null} */ (null),
  /** The name you hold or are asking for: joined again after a reconnect. */
  claim: params.get("name")?.trim() || storage.get(CLAIM_KEY),
  /** A join frame waiting for its answer. */
  joining: false,
  token: storage.get(TOKEN_KEY),
  /** The highest seq shown, and the lowest: where new and older messages go. */
  highestSeq: 0,
  lowestSeq: Infinity,
  /**
   * The highest seq the server sent in a welcome or a message frame: where a
   * resume starts (`after`). Not from an ack or a history page: a message with a
   * lower seq may still be on its way then.
   */
  resumeSeq: 0,
  /** Older messages exist above the oldest shown. */
  hasMore: false,
  /** The history requests in flight, in order: loading older pages, or filling a gap. */
  historyRequests: /** @type {("older" | "gap")[]} */ ([]),
  gapTimer: 0,
  /**
   * Stretches of the room not shown yet, newest last: a resume that missed more
   * than it carries leaves one, filled by paging back from `before` to `until`.
   * @type {{before: number, until: number}[]}
   */
  gaps: [],
  unseen: 0,
  /** Messages from others that arrived while the page was hidden, for the title. */
  unseenTitle: 0,
  lastSendAt: -Infinity,
  pumpTimer: 0,
  cooldownTimer: 0,
};

/** @type {Map<string, HTMLElement>} the shown messages, by id */
const shown = new Map();

/**
 * A message typed here and not yet acked.
 * @typedef {{clientId: string, body: string, username: string, state: "queued" | "inflight",
 *   notBefore: number, attempts: number, li: HTMLElement}} Pending
 */
/** @type {Pending[]} oldest first */
const outbox = [];

const people = new People();

if (params.has("name")) {
  // The name has done its job once it is in the claim: a reload should not re-ask.
  history.replaceState(null, "", location.pathname);
}
if (state.claim) ui.nameInput.value = state.claim;
// Typed before this module ran (the box has autofocus): kept over an older draft.
ui.textarea.value = ui.textarea.value || (storage.get(DRAFT_KEY) ?? "");
restoreOutbox();

// -- the connection --------------------------------------------------------------------

const status = new ConnectionStatus({ refocus: () => ui.textarea });
const bodyLimit = new BodyLimit(ui.textarea, ui.composeCount);

const connection = new Connection({
  query() {
    state.resumedFrom = state.resumeSeq > 0 ? state.resumeSeq : null;
    return { after: state.resumedFrom, token: state.token };
  },
  onState(connectionState, detail) {
    status.show(connectionState, detail);
    document.body.dataset.connection = connectionState;
  },
  onClose() {
    people.lose(); // who is online is not known again until the next welcome
    renderPeopleAndInvite();
    state.welcomed = false;
    state.joining = false;
    state.historyRequests = [];
    clearTimeout(state.gapTimer);
    for (const item of outbox) {
      if (item.state === "inflight") item.state = "queued"; // resent, same client_id
    }
    refreshDeliveries();
    renderHistoryStatus();
  },
  onFrame(frame) {
    const handler = handlers[frame.type];
    if (handler) handler(frame);
  },
});

const handlers = {
  welcome(frame) {
    connection.settled();
    const resumed = state.resumedFrom !== null;
    state.welcomed = true;
    people.reset(frame.users ?? [], frame.total_users ?? 0);
    const messages = frame.messages ?? [];
    if (!resumed) state.hasMore = Boolean(frame.has_more);
    heard(messages);
    if (state.everWelcomed) {
      receiveLive(messages);
    } else {
      insertMessages(messages);
      scrollToBottom();
    }
    if (resumed && frame.has_more && messages.length > 0) {
      // More were missed than a resume carries: page back until the gap is closed.
      state.gaps.push({ before: messages[0].seq, until: state.resumedFrom });
    }
    fillGap();
    state.everWelcomed = true;
    if (ui.composeError.dataset.kind === "connection") showComposeError("");

    const you = frame.you?.username ?? null;
    if (you !== null) {
      setMe(you); // the token held; a `joined` with a fresh one follows
    } else {
      if (state.token !== null) forgetToken(); // revoked or expired
      setMe(null);
      if (state.claim) join(state.claim);
    }
    renderAll();
    pump();
  },

  joined(frame) {
    state.joining = false;
    setToken(frame.token);
    setClaim(frame.username);
    setMe(frame.username);
    people.markOnline(frame.username);
    showNameError("");
    renderAll();
    pump();
  },

  left(frame) {
    const was = state.me;
    forgetToken();
    setClaim(null);
    setMe(null);
    if (was) ui.nameInput.value = was;
    ui.leaveButton.disabled = false;
    // Posts not sent yet would take the name back: they go back into the box.
    restore(outbox.filter((item) => item.state === "queued"));
    if (frame.reason === "replaced" && was) {
      showComposeError(`You are now chatting as ${was} in another window; this one only reads.`);
    } else if (frame.reason === "left_elsewhere" && was) {
      showComposeError(`You left as ${was} in another tab; this one only reads now.`);
    }
    renderAll();
  },

  presence(frame) {
    people.apply(frame.joins, frame.leaves, frame.total_users, frame.unlisted);
    renderPeopleAndInvite();
  },

  message(frame) {
    heard([frame.message]);
    people.sawPosts([frame.message], true);
    receiveLive([frame.message]);
  },

  history(frame) {
    const purpose = state.historyRequests.shift();
    const messages = frame.messages ?? [];
    if (purpose === "gap" && state.gaps.length > 0) {
      const gap = state.gaps[state.gaps.length - 1];
      const stick = atBottom();
      insertMessages(messages);
      if (stick) scrollToBottom();
      if (frame.has_more && messages.length > 0 && messages[0].seq > gap.until + 1) {
        gap.before = messages[0].seq;
      } else {
        state.gaps.pop();
      }
      clearTimeout(state.gapTimer);
      state.gapTimer = setTimeout(fillGap, GAP_PAGE_INTERVAL_MS);
    } else {
      // Older messages go above: keep what is on screen where it is.
      const fromBottom = ui.scroller.scrollHeight - ui.scroller.scrollTop;
      insertMessages(messages);
      ui.scroller.scrollTop = ui.scroller.scrollHeight - fromBottom;
      state.hasMore = Boolean(frame.has_more) && messages.length > 0;
    }
    renderHistoryStatus();
    renderEmpty();
    loadOlderIfVisible();
  },

  ack(frame) {
    const item = outbox.find((pending) => pending.clientId === frame.client_id);
    if (!item) return;
    outbox.splice(outbox.indexOf(item), 1);
    saveOutbox();
    const existing = shown.get(frame.id);
    if (existing) {
      item.li.remove(); // its broadcast came first
      setDelivery(existing, "Sent");
    } else {
      const message = {
        id: frame.id,
        seq: frame.seq,
        username: state.me ?? item.username,
        body: item.body,
        inserted_at: new Date().toISOString(),
      };
      item.li.remove();
      insertMessages([message]);
      const li = shown.get(frame.id);
      if (li) setDelivery(li, "Sent");
    }
    if (["rate", "unavailable"].includes(ui.composeError.dataset.kind ?? "")) showComposeError("");
    renderEmpty();
    refreshDeliveries();
    pump();
  },

  error(frame) {
    const item = frame.client_id
      ? outbox.find((pending) => pending.clientId === frame.client_id)
      : undefined;
    if (item) {
      postRefused(item, frame);
      return;
    }
    switch (frame.code) {
      case "invalid_username":
      case "username_taken":
      case "identity_required":
        state.joining = false;
        setClaim(null);
        showNameError(nameErrorText(frame));
        renderIdentity();
        pump();
        break;
      case "unavailable":
        state.joining = false;
        state.historyRequests = []; // a history request failed: scrolling asks again
        renderHistoryStatus();
        showComposeError(sentence(frame.message), "connection");
        break;
      default:
        console.warn("Chatter:", frame.code, frame.message);
    }
  },
};

// -- messages --------------------------------------------------------------------------

/** Messages the server pushed (welcome, message): the resume point moves past them. */
function heard(messages) {
  for (const message of messages) state.resumeSeq = Math.max(state.resumeSeq, message.seq);
}

/** Messages that arrived live: shown, announced, and scrolled to if you are at the bottom. */
function receiveLive(messages) {
  const stick = atBottom();
  const added = insertMessages(messages);
  if (added.length === 0) return;
  const others = added.filter((message) => !isMine(message.username));
  if (stick || others.length === 0) {
    scrollToBottom();
  } else {
    state.unseen += others.length;
    renderNewMessages();
  }
  for (const message of others.slice(-3)) {
    announce(ui.announcer, `${message.username}: ${message.body.slice(0, 200)}`);
  }
  if (document.visibilityState === "hidden" && others.length > 0) {
    state.unseenTitle += others.length;
    document.title = `(${state.unseenTitle}) The room · Chatter`;
  }
  renderEmpty();
}

/**
 * Show `messages` (oldest first) in seq order, each at most once.
 * @returns {object[]} the ones that were new
 */
function insertMessages(messages) {
  people.sawPosts(messages); // their authors took part: listed when offline
  const added = [];
  let next = /** @type {Element | null} */ (null);
  let first = true;
  for (const message of messages) {
    const known = shown.get(message.id);
    if (known) {
      refreshMessage(known, message);
      continue;
    }
    const li = messageElement(message);
    if (first || message.seq > state.highestSeq) {
      next = placeBefore(message.seq);
      first = false;
    } else {
      // The batch ascends: move on past what is older than this one.
      while (next && !next.classList.contains("pending") && Number(next.dataset.seq) < message.seq) {
        next = next.nextElementSibling;
      }
    }
    ui.list.insertBefore(li, next);
    regroup(li);
    if (li.nextElementSibling) regroup(/** @type {HTMLElement} */ (li.nextElementSibling));
    shown.set(message.id, li);
    state.highestSeq = Math.max(state.highestSeq, message.seq);
    state.lowestSeq = Math.min(state.lowestSeq, message.seq);
    added.push(message);
  }
  return added;
}

/** The element a message with `seq` goes before (null: the end). */
function placeBefore(seq) {
  if (seq > state.highestSeq) return ui.list.querySelector(":scope > li.pending");
  for (const child of ui.list.children) {
    if (child.classList.contains("pending") || Number(child.dataset.seq) > seq) return child;
  }
  return null;
}

function messageElement(message) {
  const li = h("li", {
    class: `message${isMine(message.username) ? " own" : ""}`,
    data: {
      id: message.id,
      seq: String(message.seq),
      author: nameKey(message.username),
      at: String(Date.parse(message.inserted_at)),
    },
  });
  fillMessage(li, message.username, message.body, timeElement(message.inserted_at));
  return li;
}

function fillMessage(li, username, body, time) {
  const meta = h(
    "div",
    { class: "message-meta" },
    h("bdi", { class: "author", text: username }), // an isolate: right-to-left names stay whole
    h("span", { class: "you-badge", text: "you" }),
    time,
  );
  li.replaceChildren(
    h(
      "span",
      { class: `avatar ${hueClass(username)}`, attrs: { "aria-hidden": "true" } },
      initial(username),
    ),
    h(
      "div",
      { class: "message-main" },
      meta,
      h("p", { class: "body", text: body, attrs: { dir: "auto" } }), // its own direction
      h("p", { class: "delivery" }),
    ),
  );
}

/** A message shown before (ours, from its ack) as the server has it now. */
function refreshMessage(li, message) {
  const body = li.querySelector(".body");
  if (body && body.textContent !== message.body) body.textContent = message.body;
  const time = li.querySelector("time");
  if (time && time.dateTime !== message.inserted_at) time.replaceWith(timeElement(message.inserted_at));
  li.dataset.at = String(Date.parse(message.inserted_at));
}

/** Consecutive messages of one person, close in time, read as one group. */
function regroup(li) {
  const previous = /** @type {HTMLElement | null} */ (li.previousElementSibling);
  const continued =
    previous !== null &&
    previous.dataset.author === li.dataset.author &&
    Math.abs(Number(li.dataset.at) - Number(previous.dataset.at)) < GROUP_WITHIN_MS;
  li.classList.toggle("continued", continued);
}

function isMine(username) {
  return state.me !== null && nameKey(username) === nameKey(state.me);
}

/** A message's delivery line; "Sent" shows on the latest sent message only. */
function setDelivery(li, text) {
  if (text === "Sent") {
    for (const older of ui.list.querySelectorAll('li[data-delivery="sent"] .delivery:not(:empty)')) {
      older.textContent = "";
    }
  }
  const delivery = li.querySelector(".delivery");
  if (delivery) delivery.textContent = text;
  li.dataset.delivery = text === "Sent" ? "sent" : "pending";
}

// -- scrolling and history ---------------------------------------------------------------

function atBottom() {
  const { scrollHeight, scrollTop, clientHeight } = ui.scroller;
  return scrollHeight - scrollTop - clientHeight < AT_BOTTOM_PX;
}

function scrollToBottom() {
  ui.scroller.scrollTop = ui.scroller.scrollHeight;
  state.unseen = 0;
  renderNewMessages();
}

/** @param {number} before @param {"older" | "gap"} purpose */
function requestHistory(before, purpose) {
  if (connection.send({ type: "history", before, limit: HISTORY_PAGE })) {
    state.historyRequests.push(purpose);
    renderHistoryStatus();
  }
}

/** Ask for the next page of the newest gap, if there is one and none is on its way. */
function fillGap() {
  if (!state.welcomed || state.gaps.length === 0 || state.historyRequests.includes("gap")) return;
  requestHistory(state.gaps[state.gaps.length - 1].before, "gap");
}

function loadOlder() {
  if (!state.welcomed || !state.hasMore || state.historyRequests.includes("older")) return;
  if (!Number.isFinite(state.lowestSeq)) return;
  requestHistory(state.lowestSeq, "older");
}

function loadOlderIfVisible() {
  const top = ui.historyStatus.getBoundingClientRect();
  const view = ui.scroller.getBoundingClientRect();
  if (top.bottom >= view.top - 200) loadOlder();
}

new IntersectionObserver(
  (entries) => {
    if (entries.some((entry) => entry.isIntersecting)) loadOlder();
  },
  { root: ui.scroller, rootMargin: "200px 0px 0px 0px" },
).observe(ui.historyStatus);

// Reading the newest stays reading the newest when the view changes size
// (the keyboard opens, a banner shows, a late font reflows the messages).
let pinned = true;
const keepPinned = new ResizeObserver(() => {
  if (pinned) ui.scroller.scrollTop = ui.scroller.scrollHeight;
});
keepPinned.observe(ui.scroller);
keepPinned.observe(ui.list);

ui.scroller.addEventListener(
  "scroll",
  () => {
    pinned = atBottom();
    if (state.unseen > 0 && pinned) {
      state.unseen = 0;
      renderNewMessages();
    }
  },
  { passive: true },
);

ui.newMessages.addEventListener("click", () => {
  scrollToBottom();
  ui.textarea.focus();
});

// -- identity --------------------------------------------------------------------------

function setMe(name) {
  state.me = name;
  for (const li of ui.list.children) {
    li.classList.toggle("own", name !== null && li.dataset.author === nameKey(name));
  }
}

function setToken(token) {
  state.token = token;
  storage.set(TOKEN_KEY, token);
}

/** Ours stopped working: the browser's goes too, unless another tab has stored a newer one. */
function forgetToken() {
  if (storage.get(TOKEN_KEY) === state.token) storage.set(TOKEN_KEY, null);
  state.token = null;
}

function setClaim(name) {
  state.claim = name;
  storage.set(CLAIM_KEY, name);
}

function join(name) {
  setClaim(name);
  if (!state.welcomed) return; // joined as soon as the welcome comes
  if (connection.send({ type: "join", username: name })) {
    state.joining = true;
    renderIdentity();
  }
}

function joinFromField() {
  const name = ui.nameInput.value.trim();
  const problem = nameProblem(name);
  if (problem) {
    showNameError(problem);
    ui.nameInput.focus();
    return;
  }
  showNameError("");
  ui.nameInput.value = name;
  join(name);
  if (!state.welcomed) showNameError("Not connected: you will join as soon as the connection is back.");
}

function nameErrorText(frame) {
  if (frame.code === "username_taken") {
    return "That name is taken by someone online right now. Choose another one.";
  }
  if (frame.code === "identity_required") return "Choose a name to send messages.";
  return sentence(frame.message);
}

function showNameError(text) {
  ui.nameError.textContent = text;
  ui.nameInput.setAttribute("aria-invalid", text ? "true" : "false");
}

ui.joinButton.addEventListener("click", joinFromField);
ui.nameInput.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.isComposing) {
    event.preventDefault();
    joinFromField();
  }
});
ui.nameInput.addEventListener("input", () => showNameError(""));
ui.leaveButton.addEventListener("click", () => {
  if (connection.send({ type: "leave" })) {
    ui.leaveButton.disabled = true;
    setClaim(null);
  } else {
    showComposeError("Not connected: try again once the connection is back.");
  }
});

// -- sending ---------------------------------------------------------------------------

function send() {
  const body = normalBody(ui.textarea.value);
  if (!body) {
    showComposeError("Write a message first.");
    return;
  }
  const tooLong = bodyLimit.problem();
  if (tooLong) {
    showComposeError(tooLong); // and the text stays in the box
    return;
  }
  let username = state.me;
  if (username === null) {
    const name = ui.nameInput.value.trim();
    const problem = nameProblem(name);
    if (problem) {
      showNameError(`${problem} Your message is kept.`);
      ui.nameInput.focus();
      return;
    }
    username = name;
  }
  const item = {
    clientId: newClientId(),
    body,
    username,
    state: /** @type {"queued"} */ ("queued"),
    notBefore: 0,
    attempts: 0,
    li: pendingElement(body, username),
  };
  outbox.push(item);
  saveOutbox();
  ui.list.append(item.li);
  regroup(item.li);
  ui.textarea.value = "";
  saveDraft();
  showComposeError("");
  renderEmpty();
  scrollToBottom();
  pump();
}

function pendingElement(body, username) {
  const li = h("li", {
    class: "message pending own",
    data: { author: nameKey(username), at: String(Date.now()) },
  });
  fillMessage(li, username, body, timeElement(new Date().toISOString()));
  setDelivery(li, "Sending…");
  return li;
}

/** Send what waits in the outbox, one post per SEND_INTERVAL_MS at most. */
function pump() {
  clearTimeout(state.pumpTimer);
  refreshDeliveries();
  if (!state.welcomed || !connection.isOpen || state.joining) return;
  const next = outbox.find((item) => item.state === "queued");
  if (!next) return;
  // Without a name yet, the first post establishes it: nothing else goes until it has.
  if (state.me === null && outbox.some((item) => item.state === "inflight")) return;
  const now = performance.now();
  const wait = Math.max(state.lastSendAt + SEND_INTERVAL_MS - now, next.notBefore - now);
  if (wait > 0) {
    state.pumpTimer = setTimeout(pump, wait);
    return;
  }
  const frame = { type: "post", body: next.body, client_id: next.clientId };
  if (state.me === null) frame.username = next.username;
  if (!connection.send(frame)) return;
  next.state = "inflight";
  next.attempts += 1;
  state.lastSendAt = now;
  coolDown();
  pump();
}

/** The send button shows the half second until the next post can go. */
function coolDown() {
  ui.sendButton.classList.remove("cooling");
  void ui.sendButton.offsetWidth; // restart the animation
  ui.sendButton.classList.add("cooling");
  clearTimeout(state.cooldownTimer);
  state.cooldownTimer = setTimeout(() => ui.sendButton.classList.remove("cooling"), SEND_INTERVAL_MS);
}

function postRefused(item, frame) {
  switch (frame.code) {
    case "rate_limited":
      item.state = "queued";
      item.notBefore = performance.now() + (frame.retry_after_ms ?? 1000);
      showComposeError("You are sending quickly: your message goes out in a moment.", "rate");
      pump();
      break;
    case "unavailable":
      item.state = "queued";
      item.notBefore = performance.now() + Math.min(RETRY_UNAVAILABLE_MAX_MS, 1000 * 2 ** item.attempts);
      showComposeError(`${sentence(frame.message)} Retrying by itself.`, "unavailable");
      pump();
      break;
    case "invalid_username":
    case "username_taken":
    case "identity_required":
      // Every message waiting on that name goes back into the box.
      restore(outbox.filter((pending) => pending.state !== "inflight" || pending === item));
      state.joining = false;
      setClaim(null);
      showNameError(`${nameErrorText(frame)} Your message is kept.`);
      renderIdentity();
      ui.nameInput.focus();
      pump();
      break;
    default: // invalid_body, bad_request
      restore([item]);
      showComposeError(sentence(frame.message));
      ui.textarea.focus();
      pump();
  }
}

/** Take `items` out of the outbox and put their text back into the box, in order. */
function restore(items) {
  const texts = [];
  for (const item of items) {
    const index = outbox.indexOf(item);
    if (index >= 0) outbox.splice(index, 1);
    item.li.remove();
    texts.push(item.body);
  }
  const current = ui.textarea.value;
  ui.textarea.value = [...texts, ...(current ? [current] : [])].join("\n");
  saveOutbox();
  saveDraft();
  renderEmpty();
}

function saveOutbox() {
  const kept = outbox.map(({ clientId, body, username }) => ({ clientId, body, username }));
  storage.set(OUTBOX_KEY, kept.length > 0 ? JSON.stringify(kept) : null);
}

/** Posts a previous load of this tab typed and never saw acked: they go out again. */
function restoreOutbox() {
  let saved = [];
  try {
    saved = JSON.parse(storage.get(OUTBOX_KEY) ?? "[]");
  } catch {
    saved = [];
  }
  for (const { clientId, body, username } of Array.isArray(saved) ? saved : []) {
    if (typeof clientId !== "string" || typeof body !== "string" || typeof username !== "string") {
      continue;
    }
    const item = { clientId, body, username, state: /** @type {"queued"} */ ("queued"), notBefore: 0, attempts: 0, li: pendingElement(body, username) };
    outbox.push(item);
    ui.list.append(item.li);
  }
}

function saveDraft() {
  storage.set(DRAFT_KEY, ui.textarea.value || null);
  bodyLimit.render();
}

function refreshDeliveries() {
  const now = performance.now();
  // More than one waiting to go: say why they go one by one.
  ui.paceNote.hidden = !state.welcomed || outbox.filter((item) => item.state === "queued").length < 2;
  for (const item of outbox) {
    let text = "Sending…";
    if (!state.welcomed) text = "Waiting for the connection…";
    else if (item.state === "queued" && item.notBefore > now) text = "Waiting to retry…";
    setDelivery(item.li, text);
  }
}

/** A problem with sending, shown under the box; `kind` says when it goes away by itself. */
function showComposeError(text, kind = "") {
  ui.composeError.textContent = text;
  ui.composeError.dataset.kind = text ? kind : "";
}

function newClientId() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
}

ui.composer.addEventListener("submit", (event) => {
  event.preventDefault();
  send();
});
ui.textarea.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    send();
  }
});
ui.textarea.addEventListener("input", () => {
  if (ui.composeError.textContent) showComposeError("");
  saveDraft();
});

// -- rendering -------------------------------------------------------------------------

function renderAll() {
  renderIdentity();
  renderPeopleAndInvite();
  renderHistoryStatus();
  renderEmpty();
}

function renderIdentity() {
  const joined = state.me !== null;
  // The keyboard on the part about to hide (Join, Leave) goes where the next keystroke belongs.
  const hiding = joined ? ui.identityJoin : ui.identityYou;
  const active = document.activeElement;
  const stranded = !hiding.hidden && (active === document.body || hiding.contains(active));
  ui.identityJoin.hidden = joined;
  ui.identityYou.hidden = !joined;
  ui.youName.textContent = state.me ?? "";
  ui.joinButton.disabled = state.joining;
  ui.joinButton.textContent = state.joining ? "Joining…" : "Join";
  ui.textarea.placeholder = joined ? `Message the room as ${state.me}…` : "Write a message…";
  if (stranded) (joined ? ui.textarea : ui.nameInput).focus();
}

function renderPeopleAndInvite() {
  renderPeople(ui.people, people, state.me === null ? null : nameKey(state.me));
  const counts = countsText(people);
  ui.peopleCounts.textContent = counts;
  ui.peopleToggleCount.textContent = onlineText(people);
  ui.invite.hidden = !(
    people.known && state.me !== null && people.onlineCount === 1 && people.isOnline(state.me)
  );
}

function renderHistoryStatus() {
  let text = "";
  let kind = "idle";
  if (state.historyRequests.includes("older")) {
    text = "Loading older messages…";
    kind = "loading";
  } else if (state.everWelcomed && !state.hasMore && shown.size > 0) {
    text = "You have reached the beginning: this is the very first message.";
    kind = "start";
  }
  ui.historyStatus.dataset.state = kind;
  ui.historyText.textContent = text;
}

function renderEmpty() {
  ui.empty.hidden = !state.everWelcomed || ui.list.childElementCount > 0;
}

function renderNewMessages() {
  ui.newMessages.hidden = state.unseen === 0;
  ui.newMessagesText.textContent =
    state.unseen === 1 ? "1 new message" : `${state.unseen} new messages`;
}

peoplePopover(ui.peopleToggle, ui.peoplePanel);

document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible" && state.unseenTitle) {
    state.unseenTitle = 0;
    document.title = "The room · Chatter";
  }
});

// Another tab of this browser took a name, and stored its token for the browser:
// a tab that holds none becomes that person too, at once, by connecting again
// with it (resuming, so nothing is shown twice) rather than asking for a name.
window.addEventListener("storage", (event) => {
  if (event.key !== TOKEN_KEY || !event.newValue || state.me !== null || state.joining) return;
  state.token = event.newValue;
  showComposeError(""); // a reason this tab had been left (left_elsewhere) is old news
  connection.drop();
  connection.retryNow();
});

keepTimesFresh(ui.list);
status.onReconnect(() => connection.retryNow());
renderAll();
connection.start();
