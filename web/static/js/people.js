// Who is here: the welcome's list, kept current by presence frames, and drawn
// online first, then offline, each group in alphabetical order. While the
// connection is lost nobody can know who is online, so the list says it shows
// who was, dimmed, until the next welcome tells again.

import { h } from "./dom.js";
import { hueClass, initial, nameKey } from "./names.js";

const TAP_MS = 1_000; // a click this soon after the pointer went down ends the same tap
const collator = new Intl.Collator(undefined, { sensitivity: "base", numeric: true });

/** @typedef {{username: string, online: boolean}} Person */

export class People {
  constructor() {
    /** @type {Map<string, Person>} by name key */
    this.byKey = new Map();
    this.total = 0;
    this.complete = false;
    /** Whether presence is current: false from a lost connection to the next welcome. */
    this.known = true;
    /** Name keys of people known to have taken part (posted): listed when offline. */
    this.tookPart = new Set();
  }

  /** Start over from a welcome's `users` and `total_users`. */
  reset(users, total) {
    this.byKey.clear();
    for (const { username, online } of users) {
      this.byKey.set(nameKey(username), { username, online: Boolean(online) });
      if (!online) this.tookPart.add(nameKey(username)); // the server lists only posters offline
    }
    this.total = Math.max(total, this.byKey.size);
    // When the welcome listed everyone, a name we have never seen is a new user.
    this.complete = this.byKey.size >= total;
    this.known = true;
  }

  /** The connection is lost: what the list says is only the last known state. */
  lose() {
    this.known = false;
  }

  /**
   * Authors of messages seen took part, so they stay listed when they leave. A
   * `live` message whose author is not listed came after their leave (another
   * node's presence can overtake it): listed offline again.
   */
  sawPosts(messages, live = false) {
    for (const { username } of messages) {
      const key = nameKey(username);
      if (live && !this.tookPart.has(key) && !this.byKey.has(key)) {
        this.byKey.set(key, { username, online: false });
        this.total = Math.max(this.total + 1, this.byKey.size);
      }
      this.tookPart.add(key);
    }
  }

  /**
   * Apply a presence frame; `total` is its `total_users`, sent when a join was just recorded.
   * Those of `leaves` in `unlisted` never posted: dropped and no longer counted, as the
   * server does (unless a message of theirs was seen since).
   */
  apply(joins = [], leaves = [], total = undefined, unlisted = []) {
    const gone = new Set(unlisted.map(nameKey));
    for (const username of leaves) {
      const key = nameKey(username);
      const known = this.byKey.get(key);
      if (gone.has(key) && !this.tookPart.has(key)) {
        if (known && this.byKey.delete(key)) this.total = Math.max(0, this.total - 1);
      } else if (known) known.online = false;
      else this.byKey.set(key, { username, online: false });
    }
    for (const username of joins) {
      const key = nameKey(username);
      const known = this.byKey.get(key);
      if (known) {
        known.online = true;
        known.username = username;
      } else {
        this.byKey.set(key, { username, online: true });
        if (this.complete) this.total += 1;
      }
    }
    if (Number.isInteger(total)) this.total = total;
    this.total = Math.max(this.total, this.byKey.size);
  }

  /** Mark one name online (our own, as soon as the server confirms it). */
  markOnline(username) {
    this.apply([username], []);
  }

  /** Online as last heard (while disconnected, as of the connection's loss). */
  isOnline(username) {
    return this.byKey.get(nameKey(username))?.online ?? false;
  }

  get onlineCount() {
    let count = 0;
    for (const person of this.byKey.values()) if (person.online) count += 1;
    return count;
  }

  /** Online first, then offline; each group alphabetical. */
  sorted() {
    return [...this.byKey.values()].sort(
      (a, b) => Number(b.online) - Number(a.online) || collator.compare(a.username, b.username),
    );
  }
}

/** "3 online / 12 total", or, while disconnected, "Last known: 3 online / 12 total" */
export function countsText(people) {
  const counts = `${people.onlineCount} online / ${people.total} total`;
  return people.known ? counts : `Last known: ${counts}`;
}

/** "3 online", for the phone's People button; "3 online?" while disconnected. */
export function onlineText(people) {
  return `${people.onlineCount} online${people.known ? "" : "?"}`;
}

/**
 * Draw `people` into `list`; `meKey` marks your own name. While presence is
 * unknown each person's `data-status` is "unknown", with the last known status
 * in `data-last-known`, and the list's `data-presence` is "unknown".
 * @param {HTMLElement} list
 * @param {People} people
 * @param {string | null} meKey
 */
export function renderPeople(list, people, meKey = null) {
  list.dataset.presence = people.known ? "known" : "unknown";
  const items = people.sorted().map((person) => {
    const mine = meKey !== null && nameKey(person.username) === meKey;
    const seen = person.online ? "online" : "offline";
    const status = people.known ? seen : "unknown";
    // An isolate: a right-to-left name does not reorder what is next to it.
    const name = h("bdi", { class: "person-name", text: person.username });
    const label = h("span", { class: "person-label" }, name);
    if (mine) label.append(h("span", { class: "you-badge", text: "you" }));
    const statusText = person.online ? "Online" : "Offline";
    return h(
      "li",
      { class: `person ${seen}${mine ? " mine" : ""}`, data: { status, lastKnown: seen } },
      h(
        "span",
        { class: `avatar small ${hueClass(person.username)}`, attrs: { "aria-hidden": "true" } },
        initial(person.username),
        h("span", { class: "presence-dot" }),
      ),
      label,
      h("span", {
        class: "person-status",
        text: people.known ? statusText : `Last known: ${statusText.toLowerCase()}`,
      }),
    );
  });
  list.replaceChildren(...items);
}

/**
 * The phone's People popover: `toggle` opens and closes `panel`. Escape closes
 * it and puts the keyboard back on the toggle (when it was there, in the panel
 * or nowhere); a tap or click outside closes it, and focus goes where the tap
 * went, or back to the toggle when the tap went to nothing that takes focus.
 * On a wide screen the panel is always shown and the toggle is not.
 * @param {HTMLElement} toggle
 * @param {HTMLElement} panel
 */
export function peoplePopover(toggle, panel) {
  const isOpen = () => panel.dataset.open === "true" && toggle.getClientRects().length > 0;
  const setOpen = (open) => {
    panel.dataset.open = String(open);
    toggle.setAttribute("aria-expanded", String(open));
  };
  // The keyboard is on no control: the page itself, a region only focusable by
  // script (<main>), or the panel, which is about to hide.
  const focusNowhere = () => {
    const active = /** @type {HTMLElement | null} */ (document.activeElement);
    return active === null || active.tabIndex < 0 || panel.contains(active);
  };
  toggle.addEventListener("click", () => setOpen(panel.dataset.open !== "true"));
  document.addEventListener("keydown", (event) => {
    if (event.key !== "Escape" || event.isComposing || !isOpen()) return;
    event.preventDefault();
    const back = focusNowhere() || document.activeElement === toggle;
    setOpen(false);
    if (back) toggle.focus();
  });
  document.addEventListener("pointerdown", (event) => {
    const target = /** @type {Node} */ (event.target);
    if (!isOpen() || panel.contains(target) || toggle.contains(target)) return;
    setOpen(false);
    // Focus goes where the tap went; a tap on nothing that takes it gives it back to the toggle.
    const tappedAt = event.timeStamp;
    document.addEventListener(
      "click",
      (click) => {
        if (focusNowhere() && click.timeStamp - tappedAt < TAP_MS) toggle.focus();
      },
      { once: true, capture: true },
    );
  });
}
