// `generate "prompt"`: submits a generation, follows its events with a progress line, downloads
// the kept images into a folder as <id>-<rank>.<format> and prints their paths. Ctrl-C cancels
// the generation: it goes with the command that started it. With --image it completes that image,
// uploaded as a multipart form with --keep-rows or a --mask file.
import { mkdir, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { parseArgs } from 'node:util';
import {
  type Connection,
  type CreateGenerationBody,
  type CreateGenerationForm,
  type Generation,
  type GenerationAccepted,
  ClientError,
  answer,
  connect,
  failure,
  reach,
  readLocalFile,
} from './api.js';
import { GLOBAL_OPTIONS, GLOBAL_USAGE, type Io, UsageError, connection, help, integer, single } from './args.js';
import { followGeneration } from './events.js';
import { progressView } from './progress.js';
import { throwIfUnsuccessful } from './watch.js';

type OutputFormat = NonNullable<CreateGenerationBody['output_format']>;
const FORMATS = ['png', 'webp', 'jpeg'] as const satisfies readonly OutputFormat[];
type RankBy = NonNullable<CreateGenerationBody['rank_by']>;
const RANK_BY = ['prompt', 'image'] as const satisfies readonly RankBy[];

/** The exit status of a command stopped by Ctrl-C (128 + SIGINT), as shells report it. */
const INTERRUPTED = 130;

const GENERATE_USAGE = `usage: dalle-serve generate "prompt" [options]
Submits a generation, follows it with a progress line (on stderr), downloads the kept images
into DIR as <id>-<rank>.<format> and prints their paths. Ctrl-C cancels the generation.

  --out DIR          where the images go (default .)
  --candidates N     image candidates sampled (default the service's, 512)
  --n K              best candidates kept after CLIP reranking (default min(32, N))
  --seed S           unsigned 32-bit seed (default random; the result says which)
  --model NAME       model pack (default the service's; see dalle-serve models)
  --format FORMAT    ${FORMATS.join(' | ')} (default png)
  --no-wait          print the generation's id and exit (follow it with dalle-serve watch ID)

completing an image (the cells kept are printed on stderr):
  --image FILE       complete this image, uploaded; needs --keep-rows or --mask
  --keep-rows N      keep the image's top N rows of the model's grid, draw the rest
  --mask FILE        keep the cells the mask leaves opaque: an image of the same size whose
                     fully transparent pixels (alpha 0) mark what to draw anew
  --rank-by WHAT     ${RANK_BY.join(' | ')}: what CLIP ranks against (default prompt; image needs --image)

${GLOBAL_USAGE}`;

const OPTIONS = {
  ...GLOBAL_OPTIONS,
  out: { type: 'string', default: '.' },
  candidates: { type: 'string' },
  n: { type: 'string' },
  seed: { type: 'string' },
  model: { type: 'string' },
  format: { type: 'string' },
  'no-wait': { type: 'boolean' },
  image: { type: 'string' },
  'keep-rows': { type: 'string' },
  mask: { type: 'string' },
  'rank-by': { type: 'string' },
} as const;

/** What to complete: the image's file, and its top rows or a mask's file. */
interface CompletionOptions {
  image: string;
  keepRows?: number;
  mask?: string;
}

export async function generate(argv: string[], io: Io): Promise<number> {
  const { values, positionals } = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true });
  if (values.help) return help(io, GENERATE_USAGE);
  // Options left out are undefined, which JSON leaves out: the service's defaults apply.
  const body: CreateGenerationBody = {
    prompt: single(positionals, 'prompt'),
    candidates: integer(values.candidates, '--candidates'),
    n: integer(values.n, '--n'),
    seed: integer(values.seed, '--seed'),
    model: values.model,
    output_format: outputFormat(values.format),
    rank_by: rankBy(values['rank-by']),
  };
  const completion = completionOptions(values);
  if (body.rank_by === 'image' && !completion) throw new UsageError('--rank-by image needs --image FILE');
  const target = connection(values, io.env);
  const accepted = await answer(
    completion
      ? connect(target).POST('/generations', await multipart(body, completion))
      : connect(target).POST('/generations', { body }),
  );
  if (completion) io.stderr.write(keptCells(accepted, completion.image));
  if (values['no-wait']) {
    io.stdout.write(`${accepted.id}\n`);
    return 0;
  }
  const generation = await followOrCancel(target, accepted.id, io);
  if (generation === undefined) return INTERRUPTED;
  throwIfUnsuccessful(generation);
  for (const path of await download(generation, values.out)) io.stdout.write(`${path}\n`);
  return 0;
}

function outputFormat(format: string | undefined): OutputFormat | undefined {
  if (format === undefined) return undefined;
  const known = FORMATS.find((name) => name === format);
  if (!known) throw new UsageError(`--format is one of ${FORMATS.join(', ')}, not "${format}"`);
  return known;
}

function rankBy(value: string | undefined): RankBy | undefined {
  if (value === undefined) return undefined;
  const known = RANK_BY.find((name) => name === value);
  if (!known) throw new UsageError(`--rank-by is one of ${RANK_BY.join(', ')}, not "${value}"`);
  return known;
}

/** The completion the options ask for, checked before anything is read or sent; undefined without --image. */
function completionOptions(values: {
  image?: string;
  'keep-rows'?: string;
  mask?: string;
}): CompletionOptions | undefined {
  const keepRows = integer(values['keep-rows'], '--keep-rows');
  const { image, mask } = values;
  if (image === undefined) {
    if (keepRows !== undefined) throw new UsageError('--keep-rows needs --image FILE');
    if (mask !== undefined) throw new UsageError('--mask needs --image FILE');
    return undefined;
  }
  if (keepRows !== undefined && mask !== undefined) throw new UsageError('give --keep-rows or --mask, not both');
  if (keepRows === undefined && mask === undefined) throw new UsageError('--image needs --keep-rows N or --mask FILE');
  return { image, keepRows, mask };
}

const file = async (path: string): Promise<File> => new File([await readLocalFile(path)], basename(path));
const text = (value: number | undefined): string | undefined => (value === undefined ? undefined : String(value));

/** The request as a multipart form: the files uploaded as they are (the service resizes them), the rest as text. */
async function multipart(body: CreateGenerationBody, { image, keepRows, mask }: CompletionOptions) {
  const form: CreateGenerationForm = {
    prompt: body.prompt,
    candidates: text(body.candidates),
    n: text(body.n),
    seed: text(body.seed),
    model: body.model,
    output_format: body.output_format,
    rank_by: body.rank_by,
    image: await file(image),
    keep_rows: text(keepRows),
    mask: mask === undefined ? undefined : await file(mask),
  };
  const data = new FormData();
  for (const [field, value] of Object.entries(form)) if (value !== undefined) data.append(field, value);
  return { body: form, bodySerializer: () => data };
}

/** `completing FILE: 24 of 64 cells kept (# kept, . drawn anew)`, then the grid's rows. */
function keptCells({ completion }: GenerationAccepted, image: string): string {
  if (!completion) return '';
  const [rows, cols] = completion.grid;
  const head = `completing ${image}: ${completion.kept_cells} of ${rows * cols} cells kept (# kept, . drawn anew)`;
  return `${[head, ...completion.kept].join('\n')}\n`;
}

/** The generation once it has ended; undefined when Ctrl-C canceled it first. */
async function followOrCancel(target: Connection, id: string, io: Io): Promise<Generation | undefined> {
  const view = progressView(io.stderr);
  const stop = new AbortController();
  const interrupt = () => stop.abort();
  process.once('SIGINT', interrupt);
  try {
    return await followGeneration(target, id, { onEvent: view.show, signal: stop.signal });
  } catch (error) {
    if (!stop.signal.aborted) throw error;
  } finally {
    process.off('SIGINT', interrupt);
    view.end();
  }
  // A second Ctrl-C while the cancel is under way ends the process at once (no handler now).
  try {
    await answer(connect(target).POST('/generations/{id}/cancel', { params: { path: { id } } }));
    io.stderr.write(`canceled ${id}\n`);
  } catch (error) {
    if (!(error instanceof ClientError)) throw error;
    io.stderr.write(`error ${error.code}: ${error.message}\n`);
  }
  return undefined;
}

/** Writes the kept images into `dir`; answers their paths, best first. */
async function download(generation: Generation, dir: string): Promise<string[]> {
  await mkdir(dir, { recursive: true });
  return Promise.all(
    generation.images.map(async (image) => {
      // The URL is signed (or an object store's presigned URL): no key goes with it, and an
      // object store refuses a request that carries a second credential.
      const response = await reach(image.url);
      if (!response.ok) throw await failure(response);
      const path = join(dir, `${generation.id}-${image.rank}.${image.format}`);
      await writeFile(path, new Uint8Array(await response.arrayBuffer()));
      return path;
    }),
  );
}
