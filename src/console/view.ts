import { h } from './dom.js';

/** What a console view gets: where to draw, its hash argument, an abort signal, a live refresh. */
export interface ViewContext {
  /** The part of the hash after the view's name: `#client/192.0.2.7` → "192.0.2.7". */
  arg: string;
  /** Aborted when the operator leaves the view. */
  signal: AbortSignal;
  /** Runs `fn` now and every `ms` until the view is left (never two runs at once). */
  every(ms: number, fn: () => Promise<void>): void;
}

export interface View {
  title: string;
  render(main: HTMLElement, ctx: ViewContext): void | Promise<void>;
}

/** A view that is a heading over one block, reloaded every `ms` by `load`. */
export function refreshingView(title: string, heading: string, ms: number, load: (signal: AbortSignal) => Promise<Node>): View {
  return {
    title,
    render(main, ctx) {
      const out = h('div');
      main.append(h('h2', {}, heading), out);
      ctx.every(ms, async () => out.replaceChildren(await load(ctx.signal)));
    },
  };
}
