/**
 * What the MTA-protocol decoders (milter, policy delegation) share: a byte stream decoded as it
 * arrives, where the first protocol error sticks. The decoder drops what it held, and every
 * later push() and end() answers that same error; end() on a stream that stopped inside an
 * item is an error too.
 */
export abstract class StickyDecoder<E extends Error> {
  private failure: E | undefined;

  /** The error that ended the stream, if any. */
  get error(): E | undefined {
    return this.failure;
  }

  /** The MTA closed the connection: an unfinished item is an error. */
  end(): E | undefined {
    if (this.failure) return this.failure;
    if (this.unfinished()) this.fail(this.truncated());
    return this.failure;
  }

  /** Ends the stream with `err`: what was held is dropped. Returns `err`. */
  protected fail(err: E): E {
    this.failure = err;
    this.drop();
    return err;
  }

  /** True while part of an item is held. */
  protected abstract unfinished(): boolean;
  /** The error for a stream that ended inside an item. */
  protected abstract truncated(): E;
  /** Forgets every byte and partial item held. */
  protected abstract drop(): void;
}
