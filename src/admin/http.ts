/**
 * HTTP plumbing shared by the admin handlers: the error a handler throws to answer 4xx/5xx
 * `{error, code}`, and the bounded JSON body reader.
 */
import type http from 'node:http';

/** Largest request body accepted (POST /series/:name/add takes a tiny JSON object). */
export const MAX_BODY_BYTES = 16 * 1024;
/** Past this many bytes of an oversized body, stop draining and drop the connection. */
const MAX_DRAIN_BYTES = 1024 * 1024;

export class AdminHttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export const bad = (message: string, code = 'AG_ADMIN_BAD_REQUEST'): AdminHttpError => new AdminHttpError(400, code, message);

/**
 * Reads a bounded JSON body. Oversized bodies are a 413 (the rest is drained, within limits).
 * The Content-Type was checked before (request-guard.ts), so nothing here reads a form body.
 */
export async function readJsonBody(req: http.IncomingMessage, res: http.ServerResponse): Promise<unknown> {
  const declared = Number(req.headers['content-length'] ?? NaN);
  const tooLarge = (): AdminHttpError => {
    res.setHeader('Connection', 'close');
    let drained = 0;
    req.on('data', (c: Buffer) => {
      drained += c.length;
      if (drained > MAX_DRAIN_BYTES) req.destroy();
    });
    req.resume();
    return new AdminHttpError(413, 'AG_ADMIN_BODY_TOO_LARGE', `the request body is larger than ${MAX_BODY_BYTES} bytes`);
  };
  if (Number.isFinite(declared) && declared > MAX_BODY_BYTES) throw tooLarge();
  const text = await new Promise<string>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (c: Buffer): void => {
      size += c.length;
      if (size > MAX_BODY_BYTES) {
        cleanup();
        reject(tooLarge());
        return;
      }
      chunks.push(c);
    };
    const onEnd = (): void => {
      cleanup();
      resolve(Buffer.concat(chunks).toString('utf8'));
    };
    const onError = (e: Error): void => {
      cleanup();
      reject(bad(`the request body could not be read: ${e.message}`));
    };
    const cleanup = (): void => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
  });
  if (text.trim() === '') throw bad('a JSON body is required, e.g. {"key": "192.0.2.7", "count": 1}', 'AG_ADMIN_BAD_JSON');
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    throw bad(`the request body is not valid JSON: ${e instanceof Error ? e.message : String(e)}`, 'AG_ADMIN_BAD_JSON');
  }
}
