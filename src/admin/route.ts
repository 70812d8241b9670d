/**
 * The shape of an admin route, shared by server.ts (the API) and console.ts (the web console's
 * page, assets and live streams): method, path segments with ':x' captures, whether the bearer
 * token applies, and a handler answering JSON, a RawBody, or HANDLED when it wrote the response
 * itself (a server-sent event stream).
 */
import type http from 'node:http';

export interface RequestContext {
  req: http.IncomingMessage;
  res: http.ServerResponse;
  params: Record<string, string>;
  query: URLSearchParams;
}

export interface Route {
  method: string;
  /** Path segments; ':x' captures. */
  parts: string[];
  auth: boolean;
  handler: (ctx: RequestContext) => Promise<unknown>;
}

/** A raw response (metrics text, the console's page and assets) instead of JSON. */
export class RawBody {
  constructor(
    readonly contentType: string,
    readonly body: string,
    /** Extra response headers (the page's Content-Security-Policy). */
    readonly headers: Readonly<Record<string, string>> = {},
  ) {}
}

/** Returned by a handler that answered on its own (the response is a stream it keeps). */
export const HANDLED: unique symbol = Symbol('handled');
