/**
 * DistinctSketch against a real redis-server (started here on a free loopback port): the same
 * values PFADDed give the same count as PFCOUNT at every size checked, the same registers, and
 * the HLL string travels both ways (GET → fromRedis, toRedis → SET → PFCOUNT / PFMERGE).
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DistinctSketch } from '../../src/series/distinct.js';
import { decodeRedis } from '../../src/series/hll.js';
import { HAVE_REDIS, RedisServer, requireRedis } from '../helpers/redis.js';

requireRedis();

/** Deterministic values, some non-ASCII (UTF-8 on the wire and in the hash). */
function values(n: number, tag: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < n; i++) out.push(i % 7 === 3 ? `rcpt-${i}-é@${tag}.example` : `rcpt-${i}@${tag}.example`);
  return out;
}

describe.skipIf(!HAVE_REDIS)('distinct sketch against redis-server', () => {
  let server: RedisServer;
  let redis: Redis;

  beforeAll(async () => {
    server = await RedisServer.start();
    redis = new Redis({ host: '127.0.0.1', port: server.port, maxRetriesPerRequest: 1 });
  });
  afterAll(async () => {
    redis?.disconnect();
    await server?.stop();
  });

  async function pfadd(key: string, vals: string[]): Promise<void> {
    const p = redis.pipeline();
    for (let i = 0; i < vals.length; i += 1000) p.pfadd(key, ...vals.slice(i, i + 1000));
    const res = await p.exec();
    for (const [err] of res ?? []) if (err) throw err;
  }

  const sketchOf = (vals: string[]): DistinctSketch => {
    const s = new DistinctSketch();
    for (const v of vals) s.add(v);
    return s;
  };

  it('"a" sets register 12711 to 2, as MurmurHash64A("a") = 0x53d2470a9b43b1a7 says', async () => {
    await redis.del('vec');
    await redis.pfadd('vec', 'a');
    const regs = decodeRedis((await redis.getBuffer('vec'))!);
    expect(regs[12711]).toBe(2);
    expect(regs.reduce((n, v) => n + (v !== 0 ? 1 : 0), 0)).toBe(1);
  });

  it.each([1, 10, 63, 64, 65, 100, 1000, 10_000, 100_000])('%i values: the count equals PFCOUNT', async (n) => {
    const key = `eq:${n}`;
    const vals = values(n, `s${n}`);
    await pfadd(key, vals);
    const s = sketchOf(vals);
    const pf = await redis.pfcount(key);
    expect(s.redisCount()).toBe(pf);
    if (n > 64) expect(s.count()).toBe(pf);
    else expect(s.count()).toBe(n); // exact below the switch, where PFCOUNT may be one short
    // same registers, whatever the encodings
    const theirs = decodeRedis((await redis.getBuffer(key))!);
    expect(Buffer.from(decodeRedis(s.toRedis())).equals(Buffer.from(theirs))).toBe(true);
  });

  it('sets of 65..20,000 values of other shapes: equal to PFCOUNT every time', async () => {
    const sizes = [66, 80, 127, 200, 333, 500, 777, 1500, 2222, 3000, 4500, 7000, 12_345, 20_000];
    for (const n of sizes) {
      const vals = Array.from({ length: n }, (_, i) => `10.${(i >>> 16) & 255}.${(i >>> 8) & 255}.${i & 255}|${n}`);
      await pfadd(`shape:${n}`, vals);
      expect([n, sketchOf(vals).count()]).toEqual([n, await redis.pfcount(`shape:${n}`)]);
    }
  });

  it('GET of a PFADDed key → fromRedis → the same count (sparse and dense strings)', async () => {
    for (const n of [5, 300, 3000, 50_000]) {
      const key = `get:${n}`;
      await pfadd(key, values(n, `g${n}`));
      const buf = (await redis.getBuffer(key))!;
      const back = DistinctSketch.fromRedis(buf);
      expect(back.count()).toBe(await redis.pfcount(key));
      expect(buf[4]).toBe(n >= 3000 ? 0 : 1); // Redis went dense past hll-sparse-max-bytes
    }
  });

  it('toRedis → SET → PFCOUNT gives the same count; PFMERGE with a PFADDed key gives the union', async () => {
    for (const n of [3, 64, 65, 700, 2500, 40_000]) {
      const vals = values(n, `set${n}`);
      const local = sketchOf(vals);
      await redis.set(`set:${n}`, local.toRedis());
      expect(await redis.pfcount(`set:${n}`)).toBe(local.redisCount());

      // a remote half overlapping the local set by a third
      const remoteVals = [...values(Math.ceil(n / 3), `set${n}`), ...values(n, `remote${n}`)];
      await redis.del(`remote:${n}`, `merged:${n}`);
      await pfadd(`remote:${n}`, remoteVals);
      await redis.pfmerge(`merged:${n}`, `set:${n}`, `remote:${n}`);
      const union = DistinctSketch.union([local, sketchOf(remoteVals)]);
      expect(await redis.pfcount(`merged:${n}`)).toBe(union.redisCount());
      expect(await redis.pfcount(`set:${n}`, `remote:${n}`)).toBe(union.redisCount());
      // and PFADD on top of our string keeps working
      await redis.pfadd(`set:${n}`, 'one-more');
      local.add('one-more');
      expect(await redis.pfcount(`set:${n}`)).toBe(local.redisCount());
    }
  });

  it('an empty sketch is an empty HLL to Redis', async () => {
    await redis.set('empty', new DistinctSketch().toRedis());
    expect(await redis.pfcount('empty')).toBe(0);
    await redis.pfadd('empty', 'x');
    expect(await redis.pfcount('empty')).toBe(1);
  });
});
