/** Connection ids: 12 hex digits of randomness, in logs and in every reply that names a connection. */
import { randomBytes } from 'node:crypto';

/** Random bytes fetched in batches rather than one call per connection. */
let pool = Buffer.alloc(0);
let offset = 0;

export function connectionId(): string {
  if (offset + 6 > pool.length) {
    pool = randomBytes(6 * 512);
    offset = 0;
  }
  offset += 6;
  return pool.toString('hex', offset - 6, offset);
}
