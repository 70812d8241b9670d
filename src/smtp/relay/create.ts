/** Builds the relay a config asks for: a pooled SMTP backend, or a directory of .eml files. */
import { DirRelay } from './dir.js';
import { SmtpRelay } from './smtp-relay.js';
import type { Relay, RelayOptions } from './types.js';

export function createRelay(opts: RelayOptions): Relay {
  return opts.kind === 'smtp' ? new SmtpRelay(opts) : new DirRelay(opts);
}
