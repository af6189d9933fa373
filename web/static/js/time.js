// Relative times ("just now", "2 minutes ago") that stay true while the page is open.

const MINUTE_S = 60;
const HOUR_S = 60 * MINUTE_S;
const DAY_S = 24 * HOUR_S;
const REFRESH_MS = 15_000; // fine enough for minutes, cheap for thousands of messages

const relative = new Intl.RelativeTimeFormat(undefined, { numeric: "always" });
const exact = new Intl.DateTimeFormat(undefined, { dateStyle: "full", timeStyle: "medium" });
const shortDate = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric" });
const longDate = new Intl.DateTimeFormat(undefined, { year: "numeric", month: "short", day: "numeric" });

/** How long ago `date` was, in words, as of `now`. */
export function ago(date, now = new Date()) {
  const seconds = Math.round((now.getTime() - date.getTime()) / 1000);
  if (seconds < 45) return "just now"; // also a clock a little ahead of ours
  if (seconds < 90) return relative.format(-1, "minute");
  if (seconds < HOUR_S) return relative.format(-Math.round(seconds / MINUTE_S), "minute");
  if (seconds < DAY_S) return relative.format(-Math.round(seconds / HOUR_S), "hour");
  if (seconds < 2 * DAY_S) return "yesterday";
  if (seconds < 7 * DAY_S) return relative.format(-Math.round(seconds / DAY_S), "day");
  return date.getFullYear() === now.getFullYear() ? shortDate.format(date) : longDate.format(date);
}

/** A <time> that shows how long ago `iso` was, and the exact time on hover. */
export function timeElement(iso) {
  const date = new Date(iso);
  const element = document.createElement("time");
  element.className = "ago";
  element.dateTime = iso;
  element.title = exact.format(date);
  element.textContent = ago(date);
  return element;
}

/** Keep every relative time under `root` current. */
export function keepTimesFresh(root) {
  const refresh = () => {
    const now = new Date();
    for (const element of root.querySelectorAll("time.ago")) {
      const text = ago(new Date(element.dateTime), now);
      if (element.textContent !== text) element.textContent = text;
    }
  };
  setInterval(refresh, REFRESH_MS);
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") refresh();
  });
}
