// The home page: who is here, live, and the way into the room.
// It watches the room as a viewer (it never posts): the welcome's people and
// then presence frames. It asks for no messages: `after` beyond any seq there
// will ever be makes the welcome carry none. While the connection is lost the
// list shows who was here, marked as the last known.

import { Connection, ConnectionStatus } from "./connection.js";
import { byId } from "./dom.js";
import { nameKey, nameProblem } from "./names.js";
import { People, countsText, renderPeople } from "./people.js";

const NO_MESSAGES_AFTER = "999999999999999999"; // the largest `after` the server accepts

const people = new People();
const list = byId("people");
const counts = byId("people-counts");
const empty = byId("people-empty");
const form = /** @type {HTMLFormElement} */ (byId("join-form"));
const nameInput = /** @type {HTMLInputElement} */ (byId("home-name"));
const nameError = byId("home-name-error");
const status = new ConnectionStatus({ refocus: () => nameInput });

function render() {
  renderPeople(list, people);
  counts.textContent = countsText(people);
  empty.hidden = people.byKey.size > 0;
}

const connection = new Connection({
  query: () => ({ after: NO_MESSAGES_AFTER }),
  onState: (state, detail) => status.show(state, detail),
  onClose: () => {
    people.lose();
    render();
  },
  onFrame: (frame) => {
    if (frame.type === "welcome") {
      connection.settled();
      people.reset(frame.users ?? [], frame.total_users ?? 0);
      render();
    } else if (frame.type === "presence") {
      people.apply(frame.joins, frame.leaves, frame.total_users, frame.unlisted);
      render();
    }
  },
});

function showNameError(text) {
  nameError.textContent = text;
  nameInput.setAttribute("aria-invalid", text ? "true" : "false");
}

form.addEventListener("submit", (event) => {
  const name = nameInput.value.trim();
  const problem = nameProblem(name);
  const taken = !problem && people.isOnline(name);
  if (problem || taken) {
    event.preventDefault();
    showNameError(problem ?? `${people.byKey.get(nameKey(name))?.username ?? name} is online right now: choose another name.`);
    nameInput.focus();
    return;
  }
  nameInput.value = name; // the form goes to /chat?name=..., where the room joins with it
});
nameInput.addEventListener("input", () => showNameError(""));

status.onReconnect(() => connection.retryNow());
render();
connection.start();
