// Device names → onnxruntime execution providers and session options, in one place.
import * as ort from 'onnxruntime-node';
import type { DeviceName } from './types.js';
import { ModelError } from './errors.js';
import type { Log } from './log.js';
import { describePlacement, profiled } from './placement.js';

export type Device = { kind: 'cpu' } | { kind: 'cuda'; deviceId: number };

export const VALID_DEVICE_NAMES = 'cpu, cuda, cuda:N (N = 0, 1, 2, …)';

export function parseDevice(name: string | undefined): Device {
  const value = (name ?? 'cpu').trim();
  if (value === 'cpu') return { kind: 'cpu' };
  if (value === 'cuda') return { kind: 'cuda', deviceId: 0 };
  const match = /^cuda:(\d{1,3})$/.exec(value);
  if (match) return { kind: 'cuda', deviceId: Number(match[1]) };
  throw new ModelError('invalid_device', `unknown device "${value}": valid names are ${VALID_DEVICE_NAMES}`);
}

export function deviceName(device: Device): DeviceName {
  return device.kind === 'cpu' ? 'cpu' : `cuda:${device.deviceId}`;
}

export interface ProviderSettings {
  device: Device;
  allowCpuFallback: boolean;
  /** CUDA arena limit in bytes; undefined = unlimited. */
  cudaMemLimitBytes?: number;
  cpuThreads?: number;
  /** Intra-op threads spin between runs instead of sleeping (onnxruntime's default). */
  cpuSpinWait?: boolean;
  /** Profile one run of each new session to log where its kernels ran. */
  probePlacement?: boolean;
  /** Set after the first CUDA failure under fallback, so later sessions go straight to the CPU. */
  fallbackReason?: string;
}

/**
 * The CUDA EP options we want. onnxruntime-node 1.29/1.30 reads only `deviceId` from the
 * provider object (js/node/src/session_options_helper.cc); the rest are passed so that a
 * binding that reads them applies them, and start-up logs that they may be ignored.
 */
function cudaProvider(settings: ProviderSettings, deviceId: number): ort.InferenceSession.ExecutionProviderConfig {
  return {
    name: 'cuda',
    deviceId,
    ...(settings.cudaMemLimitBytes !== undefined ? { gpuMemLimit: settings.cudaMemLimitBytes } : {}),
    arenaExtendStrategy: 'kSameAsRequested',
    cudnnConvAlgoSearch: 'HEURISTIC',
  } as ort.InferenceSession.ExecutionProviderConfig;
}

/** Every session's options (exported for bench:clip, which gives transformers.js the same). */
export function sessionOptions(
  settings: ProviderSettings,
  providers: ort.InferenceSession.ExecutionProviderConfig[],
): ort.InferenceSession.SessionOptions {
  return {
    executionProviders: providers,
    graphOptimizationLevel: 'all',
    executionMode: 'sequential',
    // Each inference thread makes one run at a time; inter-op parallelism only adds contention.
    interOpNumThreads: 1,
    ...(settings.cpuThreads ? { intraOpNumThreads: settings.cpuThreads } : {}),
    // Spinning threads keep their cores busy after each run while the next is awaited: between
    // a worker's spaced batches that is most of the CPU it spends, taken from the API, Redis and
    // whatever else shares the machine. Off unless asked for (CPU_SPIN_WAIT).
    extra: { session: { intra_op: { allow_spinning: settings.cpuSpinWait ? '1' : '0' } } },
    logSeverityLevel: 3,
  };
}

export interface CreatedSession {
  session: ort.InferenceSession;
  /** `cuda:N`, `cpu`, or `cpu-fallback` after CUDA failed under allowCpuFallback; with a probe, kernel counts follow. */
  provider: string;
}

type Feeds = Record<string, ort.Tensor>;

// Creates the session; with probe inputs, runs them once under the profiler and names the
// providers that really ran its kernels.
async function open(
  path: string,
  options: ort.InferenceSession.SessionOptions,
  provider: string,
  probe: Feeds | undefined,
  log: Log,
  label: string,
): Promise<CreatedSession> {
  if (!probe) {
    const session = await ort.InferenceSession.create(path, options);
    log.info({ session: label, provider }, 'session created');
    return { session, provider };
  }
  const profile = await profiled(options);
  const session = await ort.InferenceSession.create(path, profile.options);
  const kernels = await profile.placement(session, probe);
  log.info({ session: label, provider, kernels }, 'session created');
  return { session, provider: describePlacement(provider, kernels) };
}

/**
 * Creates a session on the configured device. A CUDA provider that cannot load fails here
 * with onnxruntime's reason, unless CPU fallback is allowed. `probe`: inputs for one profiled
 * run that records where the kernels ran.
 */
export async function createSession(
  path: string,
  settings: ProviderSettings,
  log: Log,
  label: string,
  probe?: Feeds,
): Promise<CreatedSession> {
  const { device } = settings;
  const cpuOnly = sessionOptions(settings, ['cpu']);
  if (settings.fallbackReason !== undefined) return open(path, cpuOnly, 'cpu-fallback', probe, log, label);
  if (device.kind === 'cpu') return open(path, cpuOnly, 'cpu', probe, log, label);
  try {
    // CPU stays listed so that nodes the CUDA EP lacks still run (onnxruntime places them).
    const options = sessionOptions(settings, [cudaProvider(settings, device.deviceId), 'cpu']);
    return await open(path, options, `cuda:${device.deviceId}`, probe, log, label);
  } catch (error) {
    const reason = (error as Error).message;
    if (!settings.allowCpuFallback) {
      throw new ModelError(
        'device_unavailable',
        `device cuda:${device.deviceId} requested but the CUDA provider failed for ${label}: ${reason}`,
      );
    }
    log.warn({ session: label, reason }, 'CUDA provider failed; falling back to the CPU for every session');
    settings.fallbackReason = reason;
    return open(path, cpuOnly, 'cpu-fallback', probe, log, label);
  }
}

export function logProviderSettings(settings: ProviderSettings, log: Log): void {
  if (settings.device.kind === 'cuda') {
    log.info(
      { device: deviceName(settings.device), cudaMemLimitBytes: settings.cudaMemLimitBytes ?? null },
      'CUDA options: onnxruntime-node applies deviceId; gpu_mem_limit, arena strategy and cuDNN search are passed but this binding may ignore them',
    );
  } else {
    log.info(
      { device: 'cpu', cpuThreads: settings.cpuThreads ?? 'default', cpuSpinWait: settings.cpuSpinWait ?? false },
      'CPU execution provider',
    );
  }
}
