#!/usr/bin/env node
/**
 * Fails (exit 1) when the relative imports of the TypeScript files under a directory form a
 * circle, printing each circle as a path: `a.ts → b.ts → a.ts`.
 *
 *   node scripts/check-cycles.mjs [DIR]        (default: src)
 *
 * Every kind of import counts: `import`, `import type`, `export … from`, dynamic `import()`
 * (a cycle of types is still a tangle). Imports are read with TypeScript's own pre-processor,
 * so an import in a comment or a string does not count. Package imports are ignored.
 */
import fs from 'node:fs';
import path from 'node:path';
import process from 'node:process';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

/** Every .ts file under `dir` (declaration files included: they may import too). */
function listFiles(dir) {
  const out = [];
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...listFiles(p));
    else if (entry.isFile() && /\.(?:m|c)?ts$/.test(entry.name)) out.push(p);
  }
  return out;
}

/** `./x.js` from `from` → the .ts file it names, if it is one of `files`. */
function resolveImport(from, spec, files) {
  if (!spec.startsWith('.')) return undefined;
  const base = path.resolve(path.dirname(from), spec);
  const candidates = [base, base.replace(/\.(m|c)?js$/, '.$1ts'), `${base}.ts`, path.join(base, 'index.ts')];
  return candidates.find((c) => files.has(c));
}

/** file → the files it imports (sorted, for stable output). */
export function importGraph(dir) {
  const files = new Set(listFiles(path.resolve(dir)));
  const graph = new Map();
  for (const file of [...files].sort()) {
    const info = ts.preProcessFile(fs.readFileSync(file, 'utf8'), true, true);
    const deps = new Set();
    for (const ref of info.importedFiles) {
      const target = resolveImport(file, ref.fileName, files);
      if (target) deps.add(target);
    }
    graph.set(file, [...deps].sort());
  }
  return graph;
}

/**
 * The strongly connected components with more than one file (or a file importing itself),
 * each reported as one circle through it (Tarjan, then a shortest way back to the start).
 */
export function findCycles(graph) {
  let index = 0;
  const idx = new Map();
  const low = new Map();
  const stack = [];
  const onStack = new Set();
  const components = [];
  const visit = (v) => {
    idx.set(v, index);
    low.set(v, index);
    index++;
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!idx.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v), low.get(w)));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v), idx.get(w)));
      }
    }
    if (low.get(v) === idx.get(v)) {
      const comp = [];
      let w;
      do {
        w = stack.pop();
        onStack.delete(w);
        comp.push(w);
      } while (w !== v);
      if (comp.length > 1 || (graph.get(v) ?? []).includes(v)) components.push(comp);
    }
  };
  for (const v of graph.keys()) if (!idx.has(v)) visit(v);
  return components.map((comp) => ({ files: comp.sort(), circle: circleThrough(graph, new Set(comp)) }));
}

/** A shortest circle from the first file (in sorted order) of a component back to itself. */
function circleThrough(graph, comp) {
  const start = [...comp].sort()[0];
  const prev = new Map();
  const queue = [start];
  while (queue.length > 0) {
    const v = queue.shift();
    for (const w of graph.get(v) ?? []) {
      if (!comp.has(w)) continue;
      if (w === start) {
        const pathBack = [v];
        for (let u = v; u !== start; ) {
          u = prev.get(u);
          pathBack.push(u);
        }
        return [...pathBack.reverse(), start];
      }
      if (!prev.has(w)) {
        prev.set(w, v);
        queue.push(w);
      }
    }
  }
  return [start, start];
}

function main() {
  const dir = process.argv[2] ?? 'src';
  const root = path.resolve(dir);
  const cycles = findCycles(importGraph(root));
  if (cycles.length === 0) return 0;
  const rel = (f) => path.relative(root, f);
  process.stderr.write(`check-cycles: ${cycles.length} import circle${cycles.length > 1 ? 's' : ''} under ${dir}/:\n`);
  for (const { files, circle } of cycles) {
    const more = files.length > circle.length - 1 ? ` (tangled together: ${files.map(rel).join(', ')})` : '';
    process.stderr.write(`  ${circle.map(rel).join(' → ')}${more}\n`);
  }
  return 1;
}

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  process.exitCode = main();
}
