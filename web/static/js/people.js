// Who is here: the welcome's list, kept current by presence frames, and drawn
// online first, then offline, each group in alphabetical order.

import { h } from "./dom.js";
import { hueClass, initial, nameKey } from "./names.js";

const collator = new Intl.Collator(undefined, { sensitivity: "base", numeric: true });

/** @typedef {{username: string, online: boolean}} Person */

export class People {
  constructor() {
    /** @type {Map<string, Person>} by name key */
    this.byKey = new Map();
    this.total = 0;
    this.complete = false;
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

/** "3 online / 12 total" */
export function countsText(people) {
  return `${people.onlineCount} online / ${people.total} total`;
}

/**
 * Draw `people` into `list`; `meKey` marks your own name.
 * @param {HTMLElement} list
 * @param {People} people
 * @param {string | null} meKey
 */
export function renderPeople(list, people, meKey = null) {
  const items = people.sorted().map((person) => {
    const mine = meKey !== null && nameKey(person.username) === meKey;
    const status = person.online ? "online" : "offline";
    const name = h("span", { class: "person-name", text: person.username });
    const label = h("span", { class: "person-label" }, name);
    if (mine) label.append(h("span", { class: "you-badge", text: "you" }));
    return h(
      "li",
      { class: `person ${status}${mine ? " mine" : ""}`, data: { status } },
      h(
        "span",
        { class: `avatar small ${hueClass(person.username)}`, attrs: { "aria-hidden": "true" } },
        initial(person.username),
        h("span", { class: "presence-dot" }),
      ),
      label,
      h("span", { class: "person-status", text: person.online ? "Online" : "Offline" }),
    );
  });
  list.replaceChildren(...items);
}
