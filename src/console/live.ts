/**
 * Server-sent events read with fetch (so the bearer token can go along, which EventSource
 * cannot send): parses `id:`, `event:`, `data:` and `retry:` lines, and reconnects after the
 * server's retry delay with Last-Event-ID, until the signal aborts.
 */
import { authHeaders, ensureAuth } from './api.js';

export interface LiveHandlers {
  event(type: string, data: string): void;
  state(connected: boolean): void;
}

export async function follow(path: string, on: LiveHandlers, signal: AbortSignal): Promise<void> {
  let retryMs = 2000;
  let lastId: string | undefined;
  while (!signal.aborted) {
    try {
      const headers: Record<string, string> = { accept: 'text/event-stream', ...authHeaders() };
      if (lastId !== undefined) headers['last-event-id'] = lastId;
      const res = await fetch(path, { headers, signal, cache: 'no-store' });
      if (res.status === 401) await ensureAuth();
      else if (res.ok && res.body) {
        on.state(true);
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        let buf = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += value;
          let end: number;
          while ((end = buf.indexOf('\n\n')) >= 0) {
            const block = buf.slice(0, end);
            buf = buf.slice(end + 2);
            let type = 'message';
            const data: string[] = [];
            for (const line of block.split('\n')) {
              const colon = line.indexOf(':');
              if (colon === 0) continue;
              const field = colon < 0 ? line : line.slice(0, colon);
              const val = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
              if (field === 'id') lastId = val;
              else if (field === 'event') type = val;
              else if (field === 'data') data.push(val);
              else if (field === 'retry' && /^\d+$/.test(val)) retryMs = Number(val);
            }
            if (data.length) on.event(type, data.join('\n'));
          }
        }
      }
    } catch {
      // a dropped connection or an abort: retried below unless aborted
    }
    if (signal.aborted) return;
    on.state(false);
    await new Promise((r) => setTimeout(r, retryMs));
  }
}
