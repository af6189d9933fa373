// Building the page from data without ever parsing HTML: every name and body
// becomes a text node, so whatever it holds is shown as characters.

/**
 * An element with its class, attributes and children.
 * @param {string} tag
 * @param {{class?: string, text?: string, attrs?: Record<string, string>, data?: Record<string, string>}} [options]
 * @param {...(Node|string)} children strings become text nodes
 * @returns {HTMLElement}
 */
export function h(tag, options = {}, ...children) {
  const element = document.createElement(tag);
  if (options.class) element.className = options.class;
  if (options.text !== undefined) element.textContent = options.text;
  for (const [name, value] of Object.entries(options.attrs ?? {})) {
    element.setAttribute(name, value);
  }
  for (const [name, value] of Object.entries(options.data ?? {})) {
    element.dataset[name] = value;
  }
  for (const child of children) {
    element.append(child);
  }
  return element;
}

/** @param {string} id @returns {HTMLElement} */
export function byId(id) {
  const element = document.getElementById(id);
  if (!element) throw new Error(`the page has no #${id}`);
  return element;
}

/** Say `text` to screen readers through a polite live region, keeping it short. */
export function announce(region, text) {
  region.append(h("p", { text }));
  while (region.childElementCount > 5) region.firstElementChild?.remove();
}
