// npm run lint:python: Ruff over every Python file under training/, with pyproject.toml's
// [tool.ruff] settings. Ruff runs as WebAssembly from npm (@astral-sh/ruff-wasm-nodejs): it is
// neither a Debian package nor reachable on PyPI from here. Prints `path:line:col code message`
// for each finding and exits 1 if there is any.
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PositionEncoding, Workspace } from '@astral-sh/ruff-wasm-nodejs';

const root = fileURLToPath(new URL('../', import.meta.url));
// Node reads no TOML; Python 3.11's tomllib does, and the training side needs that Python anyway.
const readRuffSettings =
  'import json, sys, tomllib; print(json.dumps(tomllib.load(open(sys.argv[1], "rb"))["tool"]["ruff"]))';
const settings = JSON.parse(
  execFileSync(process.env.PYTHON ?? '/usr/bin/python3', ['-c', readRuffSettings, join(root, 'pyproject.toml')], {
    encoding: 'utf8',
  }),
);
const ruff = new Workspace(settings, PositionEncoding.Utf16);

// training/runs/ holds training output (git-ignored), never source.
const files = readdirSync(join(root, 'training'), { recursive: true })
  .filter((path) => path.endsWith('.py') && !path.startsWith('runs/') && !path.includes('__pycache__'))
  .map((path) => join('training', path))
  .sort();

let findings = 0;
for (const path of files) {
  for (const d of ruff.check(readFileSync(join(root, path), 'utf8'))) {
    console.log(`${path}:${d.start_location.row}:${d.start_location.column} ${d.code ?? 'syntax-error'} ${d.message}`);
    findings++;
  }
}
if (findings) {
  console.log(`${findings} finding${findings === 1 ? '' : 's'} in ${files.length} Python files`);
  process.exit(1);
}
console.log(`${files.length} Python files clean`);
