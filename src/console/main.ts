/**
 * The console's entry module: a view per hash (#series, #top/…, #client/…, #sessions,
 * #decisions, #bans, #rates, #store). Leaving a view aborts its requests, refreshes and stream.
 */
import { ApiError, ensureAuth } from './api.js';
import { errorBox } from './dom.js';
import type { View, ViewContext } from './view.js';
import { bansView } from './view-bans.js';
import { clientView } from './view-client.js';
import { decisionsView } from './view-decisions.js';
import { ratesView } from './view-rates.js';
import { seriesView } from './view-series.js';
import { sessionsView } from './view-sessions.js';
import { storeView } from './view-store.js';
import { topView } from './view-top.js';

const VIEWS: Record<string, View> = {
  series: seriesView,
  top: topView,
  client: clientView,
  sessions: sessionsView,
  decisions: decisionsView,
  bans: bansView,
  rates: ratesView,
  store: storeView,
};

let current: AbortController | undefined;

function show(main: HTMLElement, status: HTMLElement): void {
  current?.abort();
  const controller = new AbortController();
  current = controller;
  const signal = controller.signal;
  const hash = decodeURIComponent(location.hash.replace(/^#/, ''));
  const slash = hash.indexOf('/');
  const name = slash < 0 ? hash : hash.slice(0, slash);
  const view = VIEWS[name] ?? seriesView;
  for (const a of document.querySelectorAll('nav a')) {
    if (a.getAttribute('href') === `#${name in VIEWS ? name : 'series'}`) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  document.title = `${view.title} · auditgate console`;
  main.replaceChildren();
  const failed = (e: unknown): void => {
    if (signal.aborted) return;
    status.replaceChildren(errorBox(e instanceof ApiError ? `${e.message}${e.code ? ` (${e.code})` : ''}` : `The gateway did not answer: ${String(e)}`));
  };
  const ctx: ViewContext = {
    arg: slash < 0 ? '' : location.hash.slice(location.hash.indexOf('/') + 1),
    signal,
    every(ms, fn) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const run = async (): Promise<void> => {
        try {
          await fn();
          if (!signal.aborted) status.textContent = `Updated ${new Date().toLocaleTimeString('en-GB', { hour12: false })}`;
        } catch (e) {
          failed(e);
        }
        if (!signal.aborted) timer = setTimeout(() => void run(), ms);
      };
      signal.addEventListener('abort', () => clearTimeout(timer));
      void run();
    },
  };
  Promise.resolve(view.render(main, ctx)).catch(failed);
}

async function start(): Promise<void> {
  const main = document.getElementById('main')!;
  const status = document.getElementById('status')!;
  try {
    await ensureAuth();
  } catch (e) {
    // The listener did not answer (gateway down, network): say so; a reload tries again.
    main.replaceChildren(errorBox(`The admin listener did not answer: ${String(e)}. Reload to try again.`));
    return;
  }
  window.addEventListener('hashchange', () => {
    show(main, status);
    main.focus();
  });
  show(main, status);
}

void start();
