// Usernames as the client sees them. The server decides what is valid and
// taken; the client only catches what needs no round trip.

export const MAX_NAME_CHARS = 32;

/** The form two names compare in (the server's NFKC + case fold, near enough). */
export function nameKey(name) {
  return name.normalize("NFKC").toLowerCase().normalize("NFKC");
}

/** Why `name` cannot be a username, or null when the server should decide. */
export function nameProblem(name) {
  const normal = name.normalize("NFKC");
  if (!normal) return "Choose a name first.";
  if ([...normal].length > MAX_NAME_CHARS) return `A name is at most ${MAX_NAME_CHARS} characters.`;
  if (/\s/u.test(normal)) return "A name has no spaces: try _ or - instead.";
  if (!/^[\p{L}\p{M}\p{Nd}_.-]+$/u.test(normal)) {
    return "Use letters, digits, _, - and . only.";
  }
  return null;
}

/** A server message as a sentence: capitalised, with a full stop. */
export function sentence(text) {
  const trimmed = String(text ?? "").trim();
  if (!trimmed) return "";
  const first = trimmed[0].toUpperCase() + trimmed.slice(1);
  return /[.!?]$/.test(first) ? first : `${first}.`;
}

const HUES = 8;

/** One of a few avatar colours, always the same for a name. */
export function hueClass(name) {
  let hash = 0;
  for (const char of nameKey(name)) hash = (hash * 31 + char.codePointAt(0)) >>> 0;
  return `hue-${hash % HUES}`;
}

/** The first letter of a name, for its avatar. */
export function initial(name) {
  const [first = "?"] = name;
  return first.toUpperCase();
}
