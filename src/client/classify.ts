// `classify IMAGE… --labels "a,b"`: zero-shot classification of image files and URLs. Files
// alone are uploaded as a multipart form (no base64 to inflate them); with a URL among them,
// the request is JSON, the URLs passed for the service to fetch and the files in base64.
import { basename } from 'node:path';
import { parseArgs } from 'node:util';
import { type Api, type ClassifyResponse, answer, connect, readLocalFile } from './api.js';
import { GLOBAL_OPTIONS, GLOBAL_USAGE, type Io, UsageError, connection, help, integer } from './args.js';
import type { operations } from './openapi-types.js';

type ClassifyContent = operations['classifyImages']['requestBody']['content'];
type ClassifyForm = ClassifyContent['multipart/form-data'];
type ClassifyFields = Pick<ClassifyContent['application/json'], 'labels' | 'top_k' | 'model'>;

const CLASSIFY_USAGE = `usage: dalle-serve classify IMAGE… --labels "a,b" [options]
Classifies each image (a file or an http(s) URL) against the labels and prints the labels,
best first, with their probabilities.

  --labels "a,b"     comma-separated labels
  --label X          one label (may contain commas); repeat it, or add to --labels
  --top-k K          only the best K labels of each image (default all)
  --model NAME       model pack (default the service's CLIP default)
  --json             print the service's answer as it is

${GLOBAL_USAGE}`;

const OPTIONS = {
  ...GLOBAL_OPTIONS,
  labels: { type: 'string' },
  label: { type: 'string', multiple: true },
  'top-k': { type: 'string' },
  model: { type: 'string' },
  json: { type: 'boolean' },
} as const;

export async function classify(argv: string[], io: Io): Promise<number> {
  const { values, positionals } = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true });
  if (values.help) return help(io, CLASSIFY_USAGE);
  if (positionals.length === 0) throw new UsageError('give at least one image file or URL');
  const labels = [...(values.labels?.split(',') ?? []), ...(values.label ?? [])]
    .map((label) => label.trim())
    .filter(Boolean);
  if (labels.length === 0) throw new UsageError('give labels: --labels "a,b" or --label X');
  const fields = { labels, top_k: integer(values['top-k'], '--top-k'), model: values.model };
  const result = await answer(request(connect(connection(values, io.env)), positionals, fields));
  if (values.json) io.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  else io.stdout.write(ranked(positionals, result));
  return 0;
}

const isUrl = (image: string): boolean => /^https?:\/\//i.test(image);

async function request(api: Api, images: string[], fields: ClassifyFields) {
  if (!images.some(isUrl)) {
    const form: ClassifyForm = {
      ...fields,
      image: await Promise.all(images.map(async (path) => new File([await readLocalFile(path)], basename(path)))),
      top_k: fields.top_k === undefined ? undefined : String(fields.top_k),
    };
    return api.POST('/clip/classify', { body: form, bodySerializer: () => formData(form) });
  }
  const inputs = await Promise.all(
    images.map(async (image) =>
      isUrl(image) ? { url: image } : { base64: (await readLocalFile(image)).toString('base64') },
    ),
  );
  return api.POST('/clip/classify', { body: { ...fields, images: inputs } });
}

function formData({ image, labels, templates, top_k, model }: ClassifyForm): FormData {
  const form = new FormData();
  for (const file of image) form.append('image', file);
  for (const label of labels) form.append('labels', label);
  for (const template of templates ?? []) form.append('templates', template);
  if (top_k !== undefined) form.append('top_k', top_k);
  if (model !== undefined) form.append('model', model);
  return form;
}

/** Each image, then its labels best first: `   87.3%  red circle`. */
function ranked(images: string[], { results }: ClassifyResponse): string {
  return results
    .map(
      ({ labels }, index) =>
        `${images[index]}\n${labels.map(({ label, score }) => `  ${(score * 100).toFixed(1).padStart(5)}%  ${label}\n`).join('')}`,
    )
    .join('');
}
