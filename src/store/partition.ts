/** Answers a list of requests with two handlers, each given its share in order, the results merged back in request order. */
export async function partitioned<T, R>(
  items: readonly T[],
  toSecond: (item: T) => boolean,
  first: (items: T[]) => Promise<R[]>,
  second: (items: T[]) => Promise<R[]>,
): Promise<R[]> {
  const a: number[] = [];
  const b: number[] = [];
  items.forEach((item, i) => (toSecond(item) ? b : a).push(i));
  if (b.length === 0) return first([...items]);
  if (a.length === 0) return second([...items]);
  const [ra, rb] = await Promise.all([first(a.map((i) => items[i]!)), second(b.map((i) => items[i]!))]);
  const out = new Array<R>(items.length);
  a.forEach((i, j) => (out[i] = ra[j]!));
  b.forEach((i, j) => (out[i] = rb[j]!));
  return out;
}
