/** The console's DOM helpers: elements, tables, bars and formats. Browser module (src/console/). */

type Child = Node | string | number | null | undefined | false;

/** An element with attributes (`on*` functions become listeners) and children. */
export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Record<string, unknown> = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') e.addEventListener(k.slice(2), v as EventListener);
    // Through the CSSOM: a style attribute would be blocked by the page's Content-Security-Policy.
    else if (k === 'style' && typeof v === 'object') Object.assign(e.style, v);
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  append(e, children);
  return e;
}

export function append(e: Element, children: Child[]): void {
  for (const c of children) if (c !== null && c !== undefined && c !== false) e.append(typeof c === 'number' ? String(c) : c);
}

/** A table: caption, header cells (a leading '#' right-aligns a numeric column), rows. */
export function table(caption: string, headers: string[], rows: Child[][], empty = 'Nothing yet.'): HTMLElement {
  const numeric = headers.map((x) => x.startsWith('#'));
  const head = h('tr', {}, ...headers.map((x, i) => h('th', { scope: 'col', class: numeric[i] ? 'num' : undefined }, x.replace(/^#/, ''))));
  const body = rows.length
    ? rows.map((r) => h('tr', {}, ...r.map((c, i) => h('td', { class: numeric[i] ? 'num' : undefined }, c))))
    : [h('tr', {}, h('td', { colspan: headers.length, class: 'muted' }, empty))];
  return h('div', { class: 'scroll' }, h('table', {}, h('caption', {}, caption), h('thead', {}, head), h('tbody', {}, ...body)));
}

/** A horizontal bar for `value` of `max` (up to `width` px) followed by the number. */
export function bar(value: number, max: number, width = 120): HTMLElement {
  const px = max > 0 ? Math.max(value > 0 ? 1 : 0, Math.round((value / max) * width)) : 0;
  return h('span', {}, h('span', { class: 'bar', style: { width: `${px}px` }, 'aria-hidden': 'true' }), value.toLocaleString('en'));
}

/** A row of tiny vertical bars (per-minute rates), with the numbers for screen readers. */
export function spark(values: number[], label: string): HTMLElement {
  const max = Math.max(1, ...values);
  return h(
    'span',
    { class: 'spark', role: 'img', 'aria-label': `${label}: ${values.join(', ')}` },
    ...values.map((v) => h('span', { style: { height: `${Math.round((v / max) * 100)}%` }, title: String(v) })),
  );
}

export function fmtBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB'];
  let v = n / 1024;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v.toFixed(1)} ${units[u]}`;
}

export function fmtSeconds(s: number): string {
  if (s % 86400 === 0) return `${s / 86400}d`;
  if (s % 3600 === 0) return `${s / 3600}h`;
  if (s % 60 === 0) return `${s / 60}m`;
  return `${s}s`;
}

/** Local time of day of an epoch-ms or ISO time. */
export function fmtTime(t: number | string): string {
  return new Date(t).toLocaleTimeString('en-GB', { hour12: false });
}

/** A paragraph that announces an error. */
export function errorBox(message: string): HTMLElement {
  return h('p', { class: 'error', role: 'alert' }, message);
}

/** A link to a client's page. */
export function clientLink(key: string): HTMLElement {
  return h('a', { href: `#client/${encodeURIComponent(key)}` }, key);
}
