// Tiny DOM builder used by every page instead of a framework.

type Child = Node | string | number | null | undefined | false;
type AttrValue = string | number | boolean | null | undefined | ((event: any) => void);

/**
 * Creates an element: `h('button', { type: 'button', onclick: save }, 'Save')`.
 * Attributes named `on…` with a function value become event listeners; `false`/`null`/`undefined`
 * attributes are left out; `true` sets an empty (boolean) attribute.
 */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, AttrValue> = {},
  ...children: (Child | Child[])[]
): HTMLElementTagNameMap[K] {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (typeof value === 'function') {
      element.addEventListener(name.slice(2), value);
    } else if (value === true) {
      element.setAttribute(name, '');
    } else if (value !== false && value !== null && value !== undefined) {
      element.setAttribute(name, String(value));
    }
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : String(child));
  }
  return element;
}

/** Replaces every child of `parent`. */
export function replaceChildren(parent: Element, ...children: (Child | Child[])[]): void {
  parent.replaceChildren(
    ...children.flat().filter((c): c is Node | string | number => c !== null && c !== undefined && c !== false)
      .map((c) => (c instanceof Node ? c : String(c))),
  );
}

/** A table with a header row; `empty` is shown in place of rows when there are none. */
export function dataTable(headers: string[], rows: HTMLTableRowElement[], empty: string): HTMLTableElement {
  return h(
    'table',
    {},
    h('thead', {}, h('tr', {}, headers.map((text) => h('th', { scope: 'col' }, text)))),
    h('tbody', {}, rows.length ? rows : h('tr', {}, h('td', { colspan: headers.length, class: 'empty' }, empty))),
  );
}

/** A progress bar with its text, e.g. "3 / 8". */
export function progressBar(done: number, total: number, label: string): HTMLElement {
  return h(
    'span',
    { class: 'progress' },
    h('progress', { max: Math.max(total, 1), value: done, 'aria-label': label }),
    h('span', {}, `${done} / ${total}`),
  );
}
