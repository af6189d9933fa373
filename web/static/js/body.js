// Message bodies as the server counts them (docs/PROTOCOL.md §6.2): every CRLF
// becomes LF, whitespace is trimmed as Python's `str.strip()` trims it, and the
// length is in code points (an emoji is one), not String.length's UTF-16 units.
// The box shows how much room is left near the limit and refuses to send a
// body over it, keeping the text, where the browser's maxlength would cut it.

const FALLBACK_MAX_CHARS = 2000; // the contract's limit; the page says the server's own
const NEAR_FRACTION = 0.9; // the count shows from 90% of the limit (1,800 of 2,000)

// Python's str.isspace(): the Unicode White_Space characters and U+001C to U+001F,
// but not U+FEFF, which String.prototype.trim() would also take.
const SPACE = "[\\t\\n\\v\\f\\r\\x1c-\\x20\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]";
const ENDS = new RegExp(`^${SPACE}+|${SPACE}+$`, "gu");

const numbers = new Intl.NumberFormat();

/** The body as the server will store it: CRLF as LF, trimmed. */
export function normalBody(text) {
  return text.replace(/\r\n/g, "\n").replace(ENDS, "");
}

/** How long the server finds `text`: code points, as Python's `len`. */
export function bodyLength(text) {
  let count = 0;
  for (const _ of text) count += 1;
  return count;
}

/** The limit next to the message box: a count near it, a refusal over it. */
export class BodyLimit {
  /**
   * @param {HTMLTextAreaElement} textarea whose `data-max-chars` is the server's limit
   * @param {HTMLElement} counter where the count shows
   */
  constructor(textarea, counter) {
    this.textarea = textarea;
    this.counter = counter;
    this.max = Number(textarea.dataset.maxChars) || FALLBACK_MAX_CHARS;
    textarea.addEventListener("input", () => this.render());
    this.render();
  }

  /** Characters over the limit (0 when it fits). */
  get over() {
    return Math.max(0, bodyLength(normalBody(this.textarea.value)) - this.max);
  }

  /** Why the box's text cannot be sent as it is, or null when it can. */
  problem() {
    const over = this.over;
    if (over === 0) return null;
    const max = numbers.format(this.max);
    return `A message is at most ${max} characters: shorten this one by ${numbers.format(over)} to send it.`;
  }

  /** Show the count when the text is near the limit or over it. */
  render() {
    const length = bodyLength(normalBody(this.textarea.value));
    const left = this.max - length;
    const near = length >= this.max * NEAR_FRACTION;
    this.counter.hidden = !near;
    this.counter.dataset.state = left < 0 ? "over" : "near";
    this.counter.textContent =
      left < 0
        ? `${numbers.format(-left)} ${-left === 1 ? "character" : "characters"} too many`
        : `${numbers.format(left)} ${left === 1 ? "character" : "characters"} left`;
    this.textarea.setAttribute("aria-invalid", left < 0 ? "true" : "false");
  }
}
