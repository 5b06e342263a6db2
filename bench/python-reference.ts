// The PyTorch side of the benchmarks: a training/ module run on the same device and thread
// count as onnxruntime, whose last printed line is a JSON object of its figures.
import { execFile } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { promisify } from 'node:util';
import type { Device } from '../src/models/index.js';

export interface PythonRun {
  python: string;
  /** The repository root, ending in '/': the module runs there with it on PYTHONPATH. */
  root: string;
  device: Device;
  cpuThreads: number | undefined;
}

/** Runs `python -m module args… --threads N --device D` and returns its JSON and its stderr. */
export async function runPythonReference<T>(
  run: PythonRun,
  module: string,
  args: string[],
): Promise<{ result: T; stderr: string }> {
  const threads = String(run.cpuThreads ?? availableParallelism());
  const device = run.device.kind === 'cuda' ? `cuda:${run.device.deviceId}` : 'cpu';
  // OpenBLAS's own thread pool fights torch's on a small CPU: one OpenBLAS thread is PyTorch's best here.
  const { stdout, stderr } = await promisify(execFile)(
    run.python,
    ['-m', module, ...args, '--threads', threads, '--device', device],
    {
      cwd: run.root,
      maxBuffer: 1 << 20,
      env: { OPENBLAS_NUM_THREADS: '1', ...process.env, PYTHONPATH: run.root },
    },
  );
  const json = stdout
    .trim()
    .split('\n')
    .reverse()
    .find((line) => line.trim().startsWith('{'));
  if (!json) throw new Error(`${module} printed no JSON:\n${stdout}`);
  return { result: JSON.parse(json) as T, stderr };
}

/** Saves a pack's weights, read from its graphs, as the PyTorch state file the references load. */
export async function savePackState(run: Pick<PythonRun, 'python' | 'root'>, packDir: string, out: string) {
  await promisify(execFile)(run.python, ['-m', 'training.pack.weights', packDir, out], {
    cwd: run.root,
    env: { ...process.env, PYTHONPATH: run.root },
  });
}
