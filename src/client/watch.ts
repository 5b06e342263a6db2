// `watch ID` follows a generation to its end; `get ID` prints it as the service shows it.
import { parseArgs } from 'node:util';
import { type Generation, ClientError, answer, connect } from './api.js';
import { GLOBAL_OPTIONS, GLOBAL_USAGE, type Io, connection, help, single } from './args.js';
import { followGeneration } from './events.js';
import { progressView } from './progress.js';

const WATCH_USAGE = `usage: dalle-serve watch ID [options]
Follows a generation's events to the end with a progress bar, then prints the outcome: the
ranked images with their URLs, or the error.

${GLOBAL_USAGE}`;

const GET_USAGE = `usage: dalle-serve get ID [options]
Prints the generation as JSON.

${GLOBAL_USAGE}`;

export async function watch(argv: string[], io: Io): Promise<number> {
  const { values, positionals } = parseArgs({ args: argv, options: GLOBAL_OPTIONS, allowPositionals: true });
  if (values.help) return help(io, WATCH_USAGE);
  const id = single(positionals, 'generation id');
  const view = progressView(io.stderr);
  const generation = await followGeneration(connection(values, io.env), id, { onEvent: view.show }).finally(view.end);
  throwIfUnsuccessful(generation);
  io.stdout.write(
    `${generation.status} ${generation.id} model ${generation.model ?? '-'} seed ${generation.input.seed}\n`,
  );
  for (const image of generation.images)
    io.stdout.write(`#${image.rank} score ${image.score.toFixed(3)} ${image.width}x${image.height} ${image.url}\n`);
  return 0;
}

export async function get(argv: string[], io: Io): Promise<number> {
  const { values, positionals } = parseArgs({ args: argv, options: GLOBAL_OPTIONS, allowPositionals: true });
  if (values.help) return help(io, GET_USAGE);
  const id = single(positionals, 'generation id');
  const generation = await answer(
    connect(connection(values, io.env)).GET('/generations/{id}', { params: { path: { id } } }),
  );
  io.stdout.write(`${JSON.stringify(generation, null, 2)}\n`);
  return 0;
}

/** A generation that failed or was canceled, as its error. */
export function throwIfUnsuccessful(generation: Generation): void {
  if (generation.status === 'succeeded') return;
  const { code, message } = generation.error ?? {
    code: generation.status,
    message: `the generation ${generation.status}`,
  };
  throw new ClientError(code, message);
}
