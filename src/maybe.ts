/**
 * A value now, or later. The engine decides synchronously when its counts live in this process
 * (store/types.ts: ImmediateStore) and awaits only a store that is elsewhere (Redis, a cluster's
 * primary): a promise per stage costs more than the counting itself.
 */
export type Maybe<T> = T | Promise<T>;

/** `f` of the value: at once when it is here, once it arrives otherwise (not named `then`: a module exporting `then` is taken for a promise by dynamic import). */
export function after<T, U>(v: Maybe<T>, f: (t: T) => Maybe<U>): Maybe<U> {
  return v instanceof Promise ? v.then(f) : f(v);
}
