// transformers.js (@huggingface/transformers, the library a Node user would reach for) on this
// project's own CLIP graphs, for bench/clip.ts. A local model folder, no hub: its onnx/ files are
// links to a float32 pack's clip-image / clip-text graphs and to its int8 copy's, beside the
// config, preprocessor and tokenizer files the library reads, written from the pack's manifest.
// The folder is adapted to the graphs, never the graphs to the library: it feeds `pixel_values` /
// `input_ids` and reads `image_embeds` / `text_embeds`, the names the packs already use.
import { mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
// Types only: the library is imported when first loaded, so that the GPU bundle (bench/gpu),
// which runs bench:clip on CUDA without it, leaves it out.
import type { PreTrainedModel, PreTrainedTokenizer, Processor, Tensor } from '@huggingface/transformers';
import type { PackInfo } from '../src/models/index.js';
import { sessionOptions } from '../src/models/providers.js';

/** The library's dtype for each weight format: its file suffix ('' and `_int8`). */
export type Weights = 'fp32' | 'int8';

const FOLDER = 'vit-b-32';

interface AddedToken {
  id: number;
  content: string;
}

/** Writes `root/vit-b-32`: the float32 pack's graphs as the library's fp32 files, the int8 pack's as its int8 ones. */
export async function writeModelFolder(root: string, float32: PackInfo, int8: PackInfo): Promise<void> {
  const dir = join(root, FOLDER);
  const clip = float32.manifest.clip;
  await mkdir(join(dir, 'onnx'), { recursive: true });
  const graphs = [
    ['vision_model', 'image'],
    ['text_model', 'text'],
  ] as const;
  for (const [name, graph] of graphs) {
    await symlink(join(float32.dir, clip.graphs[graph]), join(dir, 'onnx', `${name}.onnx`));
    await symlink(join(int8.dir, int8.manifest.clip.graphs[graph]), join(dir, 'onnx', `${name}_int8.onnx`));
  }

  const p = clip.preprocess;
  const shortest = p.resize === 'shortest_edge';
  const json = (file: string, value: unknown) => writeFile(join(dir, file), JSON.stringify(value, null, 2));
  // Only what the library reads for these two classes: model_type picks CLIP's classes.
  await json('config.json', {
    model_type: 'clip',
    architectures: ['CLIPModel'],
    projection_dim: clip.embed_dim,
    text_config: { model_type: 'clip_text_model', max_position_embeddings: clip.context_length },
    vision_config: { model_type: 'clip_vision_model', image_size: p.size },
  });
  // Hugging Face's CLIPImageProcessor as the pack preprocesses: shortest edge + centre crop, or a stretch.
  await json('preprocessor_config.json', {
    image_processor_type: 'CLIPImageProcessor',
    do_convert_rgb: true,
    do_resize: true,
    size: shortest ? { shortest_edge: p.size } : { height: p.size, width: p.size },
    resample: p.interpolation === 'bicubic' ? 3 : 2,
    do_center_crop: shortest,
    crop_size: { height: p.size, width: p.size },
    do_rescale: true,
    rescale_factor: 1 / 255,
    do_normalize: true,
    image_mean: p.mean,
    image_std: p.std,
  });
  // The pack's tokenizer.json leaves BOS/EOS to the service (src/models/tokenizers.ts); the
  // library adds them through the post-processor, as Hugging Face's CLIP tokenizer.json does.
  const tokenizer = JSON.parse(await readFile(join(float32.dir, clip.tokenizer), 'utf8')) as {
    added_tokens: AddedToken[];
    model: { vocab: Record<string, number> };
    post_processor: unknown;
  };
  const special = (id: number) => {
    const token = tokenizer.added_tokens.find((t) => t.id === id);
    if (!token) throw new Error(`the pack's tokenizer has no added token ${id}`);
    return token.content;
  };
  const [bos, eos] = [special(clip.bos_id), special(clip.eos_id)];
  const pad = Object.entries(tokenizer.model.vocab).find(([, id]) => id === clip.pad_id)?.[0];
  if (pad === undefined) throw new Error(`the pack's vocabulary has no token ${clip.pad_id}`);
  tokenizer.post_processor = {
    type: 'RobertaProcessing',
    sep: [eos, clip.eos_id],
    cls: [bos, clip.bos_id],
    trim_offsets: false,
    add_prefix_space: false,
  };
  await json('tokenizer.json', tokenizer);
  // Padded with the pack's pad id, so that padded ids equal the service's, position by position.
  await json('tokenizer_config.json', {
    tokenizer_class: 'CLIPTokenizer',
    model_max_length: clip.context_length,
    bos_token: bos,
    eos_token: eos,
    unk_token: eos,
    pad_token: pad,
  });
}

export interface TransformersJs {
  library: typeof import('@huggingface/transformers');
  vision: Record<Weights, PreTrainedModel>;
  text: Record<Weights, PreTrainedModel>;
  processor: Processor;
  tokenizer: PreTrainedTokenizer;
}

/**
 * The library's CLIP classes on the folder, from disk only. Their sessions get the options the
 * packs' CPU sessions get (threads, and threads sleeping between runs where onnxruntime's default
 * spins), so that the two differ only in the library around the same runtime.
 */
export async function loadTransformersJs(root: string, cpuThreads: number | undefined): Promise<TransformersJs> {
  const library = await import('@huggingface/transformers');
  const { env, AutoProcessor, AutoTokenizer, CLIPTextModelWithProjection, CLIPVisionModelWithProjection } = library;
  env.allowRemoteModels = false;
  env.allowLocalModels = true;
  env.localModelPath = root;
  env.useFSCache = false;
  const session_options = sessionOptions({ device: { kind: 'cpu' }, allowCpuFallback: false, cpuThreads }, ['cpu']);
  const options = (dtype: Weights) => ({ dtype, device: 'cpu' as const, session_options });
  const load = async (cls: typeof CLIPVisionModelWithProjection | typeof CLIPTextModelWithProjection) => ({
    fp32: await cls.from_pretrained(FOLDER, options('fp32')),
    int8: await cls.from_pretrained(FOLDER, options('int8')),
  });
  return {
    library,
    vision: await load(CLIPVisionModelWithProjection),
    text: await load(CLIPTextModelWithProjection),
    processor: await AutoProcessor.from_pretrained(FOLDER),
    tokenizer: await AutoTokenizer.from_pretrained(FOLDER),
  };
}

function embeds(out: Record<string, Tensor>, name: string): Tensor {
  const tensor = out[name];
  if (!tensor) throw new Error(`transformers.js returned ${Object.keys(out).join(', ')}, not ${name}`);
  return tensor;
}

/** Image embeddings [n × E] of prepared pixels [n, 3, S, S], as the library's model returns them. */
export async function imageEmbeds(
  tjs: TransformersJs,
  weights: Weights,
  pixels: Float32Array,
  dims: number[],
): Promise<Float32Array> {
  const pixel_values = new tjs.library.Tensor('float32', pixels, dims);
  return embeds(await tjs.vision[weights]({ pixel_values }), 'image_embeds').data as Float32Array;
}

/** Text embeddings [n × E] of prepared ids [n, context]. */
export async function textEmbeds(
  tjs: TransformersJs,
  weights: Weights,
  ids: BigInt64Array,
  dims: number[],
): Promise<Float32Array> {
  const input_ids = new tjs.library.Tensor('int64', ids, dims);
  return embeds(await tjs.text[weights]({ input_ids }), 'text_embeds').data as Float32Array;
}

/** Encoded images to L2-normalised embeddings [n × E] the library's way: RawImage, the processor, the model. */
export async function embedEncoded(tjs: TransformersJs, weights: Weights, images: Uint8Array[]): Promise<Float32Array> {
  const raw = await Promise.all(images.map((bytes) => tjs.library.RawImage.fromBlob(new Blob([bytes]))));
  const { pixel_values } = (await tjs.processor(raw)) as { pixel_values: Tensor };
  const out = (await tjs.vision[weights]({ pixel_values })) as Record<string, Tensor>;
  return embeds(out, 'image_embeds').normalize(2, -1).data as Float32Array;
}

/** Token ids [n × context] as the library pads and truncates them. */
export function tokenize(tjs: TransformersJs, texts: string[], context: number): BigInt64Array {
  const { input_ids } = tjs.tokenizer(texts, { padding: 'max_length', max_length: context, truncation: true }) as {
    input_ids: Tensor;
  };
  return input_ids.data as BigInt64Array;
}
