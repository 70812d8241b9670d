/** The one way files are written durably: whole writes, temp + rename, abort leaves nothing. */
import fs from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { appendLine, createDurable, writeAll } from '../../../src/fs/durable-file.js';

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ag-durable-'));
});
afterEach(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

/** A file handle whose writes take at most `max` bytes each (0: none at all). */
function stingyHandle(max: number): { fh: FileHandle; written: number[] } {
  const written: number[] = [];
  const fh = {
    write: (buf: Uint8Array, off: number, len: number) => {
      const n = Math.min(max, len);
      written.push(...buf.subarray(off, off + n));
      return Promise.resolve({ bytesWritten: n, buffer: buf });
    },
  } as unknown as FileHandle;
  return { fh, written };
}

describe('writeAll', () => {
  it('writes every byte through short writes', async () => {
    const h = stingyHandle(3);
    await writeAll(h.fh, Buffer.from('0123456789'));
    expect(Buffer.from(h.written).toString()).toBe('0123456789');
  });

  it('a write that makes no progress is an error, not a loop', async () => {
    await expect(writeAll(stingyHandle(0).fh, Buffer.from('x'))).rejects.toThrow(/short write: 0 of 1 bytes/);
  });
});

describe('createDurable', () => {
  it('the target changes only at commit, from the old content to the new', async () => {
    const target = path.join(dir, 'state.json');
    fs.writeFileSync(target, 'old');
    const file = await createDurable(target, { temp: `${target}.tmp` });
    await file.write(Buffer.from('new '));
    await file.write(Buffer.from('content'));
    expect(fs.readFileSync(target, 'utf8')).toBe('old');
    await file.commit();
    expect(fs.readFileSync(target, 'utf8')).toBe('new content');
    expect(file.bytes).toBe(11);
    expect(fs.readdirSync(dir)).toEqual(['state.json']);
    expect(fs.statSync(target).mode & 0o777 & ~0o640).toBe(0); // private (umask may take more)
  });

  it('abort removes the temp file and keeps the target', async () => {
    const target = path.join(dir, 'm.eml');
    const file = await createDurable(target, { temp: path.join(dir, '.m.eml.tmp') });
    await file.write(Buffer.from('half a message'));
    await file.abort();
    await file.abort();
    expect(fs.readdirSync(dir)).toEqual([]);
    await expect(file.write(Buffer.from('more'))).rejects.toThrow(/after commit or abort/);
  });

  it('refuses a temp file that exists (two writers never share one)', async () => {
    fs.writeFileSync(path.join(dir, 'x.tmp'), '');
    await expect(createDurable(path.join(dir, 'x'), { temp: path.join(dir, 'x.tmp') })).rejects.toThrow(/EEXIST/);
  });
});

describe('appendLine', () => {
  it('creates the file and its directory, appends whole lines, ends a torn last line first', async () => {
    const file = path.join(dir, 'series', 'day.jsonl');
    await appendLine(file, '{"a":1}\n');
    fs.appendFileSync(file, '{"torn":');
    await appendLine(file, '{"b":2}\n');
    expect(fs.readFileSync(file, 'utf8')).toBe('{"a":1}\n{"torn":\n{"b":2}\n');
  });
});
