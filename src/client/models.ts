// `models`: the packs the service's workers serve, as a table or as the service's JSON.
import { parseArgs } from 'node:util';
import { type ModelInfo, answer, connect } from './api.js';
import { GLOBAL_OPTIONS, GLOBAL_USAGE, type Io, connection, help } from './args.js';

const MODELS_USAGE = `usage: dalle-serve models [options]
Lists the model packs the service's workers serve.

  --json             print the service's answer as it is

${GLOBAL_USAGE}`;

const OPTIONS = { ...GLOBAL_OPTIONS, json: { type: 'boolean' } } as const;

const COLUMNS: [string, (model: ModelInfo) => string][] = [
  ['NAME', (model) => model.name],
  ['VERSION', (model) => model.version],
  ['DEFAULT FOR', (model) => model.default_for.join(',') || '-'],
  ['IMAGES', (model) => (model.generation ? model.generation.image_size.join('x') : 'clip only')],
  ['EMBED', (model) => String(model.embed_dim)],
  ['LICENSE', (model) => model.license ?? '-'],
];

export async function models(argv: string[], io: Io): Promise<number> {
  const { values } = parseArgs({ args: argv, options: OPTIONS });
  if (values.help) return help(io, MODELS_USAGE);
  const list = await answer(connect(connection(values, io.env)).GET('/models'));
  io.stdout.write(values.json ? `${JSON.stringify(list, null, 2)}\n` : table(list.data));
  return 0;
}

function table(list: ModelInfo[]): string {
  const rows = [COLUMNS.map(([title]) => title), ...list.map((model) => COLUMNS.map(([, cell]) => cell(model)))];
  const widths = COLUMNS.map((_, column) => Math.max(...rows.map((row) => row[column].length)));
  return rows
    .map(
      (row) =>
        `${row
          .map((cell, column) => cell.padEnd(widths[column]))
          .join('  ')
          .trimEnd()}\n`,
    )
    .join('');
}
