// `npm run openapi`: writes openapi/openapi.json from the routes. A test fails when the
// committed file and the routes drift apart.
import { mkdir, writeFile } from 'node:fs/promises';
import { generateOpenApi, serializeOpenApi } from '../src/api/openapi.js';

const target = new URL('../openapi/openapi.json', import.meta.url);
await mkdir(new URL('.', target), { recursive: true });
await writeFile(target, serializeOpenApi(await generateOpenApi()));
process.stdout.write(`wrote ${target.pathname}\n`);
