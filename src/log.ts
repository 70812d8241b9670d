/** The pino root logger. */
import { pino, type Logger, type LevelWithSilent } from 'pino';

export function createLogger(level: LevelWithSilent = 'info', destination?: NodeJS.WritableStream): Logger {
  return pino({ level, base: { svc: 'auditgate' } }, destination ?? process.stdout);
}

