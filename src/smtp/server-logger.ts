/**
 * smtp-server's logging through pino: an adapter that keeps the library's transcript text, and
 * a switch that turns its per-line transcript calls into no-ops when debug is off.
 */
import { format } from 'node:util';
import type { Logger } from 'pino';
import type { SMTPServer } from 'smtp-server';

type LogFn = (...args: unknown[]) => void;
export interface SmtpServerLogger {
  info: LogFn;
  debug: LogFn;
  error: LogFn;
  warn: LogFn;
  trace: LogFn;
  fatal: LogFn;
}

/**
 * smtp-server logs as logger.info({meta}, 'fmt %s', args…). pino ignores extra arguments
 * without matching placeholders in its own style, so the transcript text would be lost:
 * format the message here and pass the metadata through. Transcript lines go to debug, and so
 * do the library's per-connection socket errors (`tnx: 'error'`): a client resetting its
 * connection is normal internet behaviour, and the front logs each one itself at the level
 * that fits (see SmtpFront.connectionError).
 */
export function smtpServerLogger(logger: Logger): SmtpServerLogger {
  const wrap = (level: 'info' | 'debug' | 'error' | 'warn' | 'trace' | 'fatal', demote: boolean): LogFn => {
    const base = demote && level === 'info' ? 'debug' : level;
    return (...args: unknown[]) => {
      let meta: Record<string, unknown> = {};
      if (args.length && typeof args[0] === 'object' && args[0] !== null && !(args[0] instanceof Error)) {
        meta = args.shift() as Record<string, unknown>;
      }
      const lvl = level === 'error' && meta.tnx === 'error' ? 'debug' : base;
      if (!logger.isLevelEnabled(lvl)) return;
      const msg = args.length ? format(...(args as [unknown, ...unknown[]])) : '';
      logger[lvl]({ smtp: meta }, msg);
    };
  };
  return {
    info: wrap('info', true),
    debug: wrap('debug', false),
    error: wrap('error', false),
    warn: wrap('warn', false),
    trace: wrap('trace', false),
    fatal: wrap('fatal', false),
  };
}

/**
 * smtp-server logs every command and reply at info (which the adapter demotes to debug),
 * through nodemailer's wrapper that copies an object per line even when nothing is written.
 * When debug is off those levels become no-ops on the instance; warn and error still log.
 */
export function quietTranscript(server: SMTPServer, logger: Logger): SMTPServer {
  if (logger.isLevelEnabled('debug')) return server;
  const internal = server as unknown as { logger: Record<string, (...args: unknown[]) => unknown> };
  const none = (): boolean => false;
  internal.logger.info = none;
  internal.logger.debug = none;
  internal.logger.trace = none;
  return server;
}
