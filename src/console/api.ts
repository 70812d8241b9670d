/**
 * The console's way to the admin API: same-origin JSON requests with the bearer token when one
 * is needed. The token is asked for once (a dialog) and kept in sessionStorage for this tab;
 * `GET auth` says whether one is needed and whether ours is right, so the page never has to
 * provoke a 401 to find out.
 */
const KEY = 'auditgate.token';

export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly code?: string,
  ) {
    super(message);
  }
}

function token(): string | null {
  return sessionStorage.getItem(KEY);
}

export function authHeaders(): Record<string, string> {
  const t = token();
  return t === null ? {} : { authorization: `Bearer ${t}` };
}

let asking: Promise<void> | undefined;

/** Resolves once the API will answer us: at once without a token, else after the dialog got a right one. */
export function ensureAuth(): Promise<void> {
  asking ??= (async () => {
    let wrong = false;
    for (;;) {
      const r = await fetch('auth', { headers: authHeaders(), cache: 'no-store' });
      const a = (await r.json()) as { required: boolean; authorized: boolean };
      if (a.authorized) return;
      if (token() !== null) wrong = true;
      sessionStorage.setItem(KEY, await askToken(wrong));
    }
  })().finally(() => {
    asking = undefined;
  });
  return asking;
}

function askToken(wrong: boolean): Promise<string> {
  const dialog = document.getElementById('token-dialog') as HTMLDialogElement;
  const form = document.getElementById('token-form') as HTMLFormElement;
  const input = document.getElementById('token-input') as HTMLInputElement;
  const error = document.getElementById('token-error')!;
  error.textContent = wrong ? 'That token is not right; try again.' : '';
  input.value = '';
  return new Promise((resolve) => {
    const done = (ev: Event): void => {
      ev.preventDefault();
      if (input.value.trim() === '') return;
      form.removeEventListener('submit', done);
      dialog.close();
      resolve(input.value.trim());
    };
    form.addEventListener('submit', done);
    // Escape would close the dialog and leave the page waiting: the token is needed to go on.
    dialog.oncancel = (ev) => ev.preventDefault();
    if (!dialog.open) dialog.showModal();
    input.focus();
  });
}

/** One JSON request; a refusal is an ApiError with the API's message and code. A 401 asks for the token again. */
export async function api<T>(path: string, init: { method?: string; body?: unknown; signal?: AbortSignal } = {}): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    const headers: Record<string, string> = { accept: 'application/json', ...authHeaders() };
    const req: RequestInit = { method: init.method ?? 'GET', headers, cache: 'no-store' };
    if (init.signal) req.signal = init.signal;
    if (init.body !== undefined) {
      headers['content-type'] = 'application/json';
      req.body = JSON.stringify(init.body);
    }
    const res = await fetch(path, req);
    const json = (await res.json().catch(() => undefined)) as unknown;
    if (res.ok) return json as T;
    if (res.status === 401 && attempt === 0) {
      await ensureAuth();
      continue;
    }
    const e = json as { error?: string; code?: string } | undefined;
    throw new ApiError(e?.error ?? `HTTP ${res.status}`, res.status, e?.code);
  }
}
