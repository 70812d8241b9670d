import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';

const SCRIPT = path.resolve('scripts/check-cycles.mjs');
const dirs: string[] = [];

function tree(files: Record<string, string>): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ag-cycles-'));
  dirs.push(dir);
  for (const [name, text] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
    fs.writeFileSync(path.join(dir, name), text);
  }
  return dir;
}

function check(dir: string): { status: number | null; stderr: string } {
  const r = spawnSync(process.execPath, [SCRIPT, dir], { encoding: 'utf8' });
  return { status: r.status, stderr: r.stderr };
}

afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

describe('scripts/check-cycles.mjs (npm test runs it on src/)', () => {
  it('passes a tree without circles', () => {
    const dir = tree({
      'a.ts': "import { b } from './b.js';\nexport const a = b + 1;\n",
      'b.ts': "import type { C } from './sub/c.js';\nexport const b: C = 1;\n",
      'sub/c.ts': "// import { a } from '../a.js' (a comment is not an import)\nexport type C = number;\n",
    });
    expect(check(dir)).toEqual({ status: 0, stderr: '' });
  });

  it('fails on a circle of type imports and prints its path', () => {
    const dir = tree({
      'a.ts': "import type { B } from './b.js';\nexport interface A { b?: B }\n",
      'b.ts': "import type { A } from './a.js';\nexport interface B { a?: A }\n",
    });
    const r = check(dir);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('a.ts → b.ts → a.ts');
  });

  it('follows export … from and dynamic import() across folders', () => {
    const dir = tree({
      'x/index.ts': "export * from './one.js';\n",
      'x/one.ts': "export const one = async () => (await import('../y/two.js')).two;\n",
      'y/two.ts': "import { one } from '../x/index.js';\nexport const two = one;\n",
    });
    const r = check(dir);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(`x${path.sep}index.ts → x${path.sep}one.ts → y${path.sep}two.ts → x${path.sep}index.ts`);
  });

  it('finds none in src/', () => {
    expect(check(path.resolve('src'))).toEqual({ status: 0, stderr: '' });
  });
});
