// Where a session's nodes really run. An execution provider that cannot take a node leaves
// it to the CPU without a word, so a CUDA session is probed once: one profiled run on minimal
// inputs, then onnxruntime's own profile says which provider ran each kernel.
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { generatingManifest, type GraphName, type Manifest } from './manifest.js';

const int64 = (values: number[], dims: number[]) => new ort.Tensor('int64', BigInt64Array.from(values, BigInt), dims);
const zeros = (dims: number[]) => new ort.Tensor('float32', new Float32Array(dims.reduce((a, b) => a * b, 1)), dims);

/** Batch-1 inputs that every graph of the contract accepts. */
export function probeFeeds(m: Manifest, graph: GraphName): Record<string, ort.Tensor> {
  if (graph === 'clip_image') return { pixel_values: zeros([1, 3, m.clip.preprocess.size, m.clip.preprocess.size]) };
  if (graph === 'clip_text') {
    const ids = new Array<number>(m.clip.context_length).fill(m.clip.pad_id);
    ids[0] = m.clip.bos_id;
    ids[1] = m.clip.eos_id;
    return { input_ids: int64(ids, [1, ids.length]) };
  }
  const { geometry: g, generator } = generatingManifest(m);
  const T = g.text_length;
  const N = g.image_grid[0] * g.image_grid[1];
  const text = int64(new Array<number>(T).fill(generator.text_pad_id), [1, T]);
  switch (graph) {
    case 'prefill':
      return { text_tokens: text };
    case 'step':
      return {
        image_token: int64([0], [1, 1]),
        past_kv: zeros([generator.layers, 2, 1, generator.heads, T, generator.head_dim]),
      };
    case 'sample_loop':
      return {
        text_tokens: text,
        uniforms: zeros([1, N]),
        top_k: int64([1], [1]),
        temperature: new ort.Tensor('float32', Float32Array.of(1), [1]),
        top_p: new ort.Tensor('float32', Float32Array.of(1), [1]),
        ...(m.schema_version >= 4 ? { keep: int64(new Array<number>(N).fill(-1), [1, N]) } : {}),
      };
    case 'kv_step': {
      // The prompt half on one prompt, the step half on one row at the first image position.
      const cache = zeros([1, generator.heads, 1, generator.head_dim]);
      const caches = Array.from({ length: generator.layers }, (_, l) => [
        [`k_${l}`, cache],
        [`v_${l}`, cache],
      ]).flat() as [string, ort.Tensor][];
      return {
        text_tokens: text,
        image_token: int64([0], [1, 1]),
        position: int64([T], [1]),
        ...Object.fromEntries(caches),
      };
    }
    case 'decoder':
      return { image_tokens: int64(new Array<number>(N).fill(0), [1, N]) };
    case 'encoder': {
      const [height, width] = g.image_size;
      return { pixels: new ort.Tensor('uint8', new Uint8Array(height * width * 3), [1, height, width, 3]) };
    }
  }
}

export interface ProfiledSession {
  options: ort.InferenceSession.SessionOptions;
  /** Runs the probe once and returns kernel counts by provider, e.g. { CUDAExecutionProvider: 41 }. */
  placement(session: ort.InferenceSession, feeds: Record<string, ort.Tensor>): Promise<Record<string, number>>;
}

/** Session options with profiling on, and the reader of the profile they produce. */
export async function profiled(options: ort.InferenceSession.SessionOptions): Promise<ProfiledSession> {
  const dir = await mkdtemp(join(tmpdir(), 'ort-placement-'));
  return {
    options: { ...options, enableProfiling: true, profileFilePrefix: join(dir, 'profile') },
    async placement(session, feeds) {
      try {
        await session.run(feeds);
        session.endProfiling();
        const [file] = await readdir(dir);
        const events = JSON.parse(await readFile(join(dir, file), 'utf8')) as {
          cat: string;
          name: string;
          args?: { provider?: string };
        }[];
        const counts: Record<string, number> = {};
        for (const e of events) {
          if (e.cat !== 'Node' || !e.name.endsWith('_kernel_time') || !e.args?.provider) continue;
          counts[e.args.provider] = (counts[e.args.provider] ?? 0) + 1;
        }
        return counts;
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    },
  };
}

/** "cuda:0 (CUDA 41, CPU 3 kernels)" */
export function describePlacement(provider: string, counts: Record<string, number>): string {
  const parts = Object.entries(counts).map(([name, n]) => `${name.replace('ExecutionProvider', '')} ${n}`);
  return `${provider} (${parts.join(', ') || 'no'} kernels)`;
}
