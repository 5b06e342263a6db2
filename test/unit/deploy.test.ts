// Static checks of the deployment files (no Docker engine runs in the tests): the compose
// file against the Compose specification's schema and dclint's rules, its services and their
// wiring, the images' bases and entry points, and .env.example against the variables
// src/config.ts actually reads. The Kubernetes manifests: test/deploy/kubernetes.test.ts.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, test } from 'node:test';
import { DCLinter } from 'dclint';
import { parse } from 'yaml';
import { loadConfig } from '../../src/config.js';
import { configVariables } from '../deploy/config-variables.js';

const read = (path: string): string => readFileSync(new URL(`../../${path}`, import.meta.url), 'utf8');

interface Service {
  image?: string;
  build?: { context: string; dockerfile: string };
  command?: string[] | string;
  profiles?: string[];
  ports?: string[];
  stop_grace_period?: string;
  environment?: Record<string, string>;
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: { test: string[] };
  volumes?: string[];
  deploy?: {
    resources?: { reservations?: { devices?: Array<{ driver: string; count: number; capabilities: string[] }> } };
  };
}

const compose = parse(read('docker-compose.yml'), { merge: true }) as { services: Record<string, Service> };
const { services } = compose;
/** The services that run the service's own code: the API and a worker per profile. */
const WORKERS = ['worker-cpu', 'worker-gpu'];
const OURS = ['api', ...WORKERS];

function parseEnvExample(): Map<string, string> {
  const lines = read('.env.example').split('\n');
  const values = new Map<string, string>();
  lines.forEach((line, index) => {
    const match = /^([A-Z][A-Z0-9_]*)=(.*)$/.exec(line);
    if (!match) return;
    assert.match(lines[index - 1] ?? '', /^# \S/, `${match[1]} in .env.example needs a one-line comment above it`);
    assert.ok(!values.has(match[1]), `${match[1]} is listed twice in .env.example`);
    values.set(match[1], match[2]);
  });
  return values;
}

function environment(name: string): Record<string, string> {
  const env = services[name]?.environment;
  assert.ok(env, `service ${name} has an environment`);
  return env;
}

describe('docker-compose.yml', () => {
  test('passes dclint: the Compose specification schema, pinned tags, ports bound to an interface', () => {
    const linter = new DCLinter({
      rules: {
        // Style only: the file reads in the order things start, not alphabetically.
        'service-keys-order': 0,
        'services-alphabetical-order': 0,
        'top-level-properties-order': 0,
        'require-quotes-in-ports': 0,
        // The cpu and gpu workers are alternatives (one profile at a time) on the same port;
        // the test below checks ports that run together.
        'no-duplicate-exported-ports': 0,
      },
      quiet: true,
      debug: false,
      exclude: [],
    });
    const [result] = linter.lintFiles([fileURLToPath(new URL('../../docker-compose.yml', import.meta.url))], false);
    assert.deepEqual(
      // dclint's own declarations import without file extensions, which NodeNext cannot follow.
      result.messages.map(
        (message: { line: number; rule: string; message: string }) =>
          `${message.line}: ${message.rule}: ${message.message}`,
      ),
      [],
    );
  });

  test('has redis, minio, the bucket job, the api, and a worker in each of the cpu and gpu profiles', () => {
    for (const name of ['redis', 'minio', 'create-bucket', ...OURS]) assert.ok(services[name], name);
    assert.equal(services.api.build?.dockerfile, 'Dockerfile');
    assert.equal(services['worker-cpu'].build?.dockerfile, 'Dockerfile');
    assert.equal(services['worker-gpu'].build?.dockerfile, 'Dockerfile.gpu');
    assert.deepEqual(services['worker-cpu'].profiles, ['cpu']);
    assert.deepEqual(services['worker-gpu'].profiles, ['gpu']);
    for (const [name, service] of Object.entries(services)) {
      if (!WORKERS.includes(name)) assert.equal(service.profiles, undefined, `${name} runs in every profile`);
    }
  });

  test('images are pinned: redis to an exact version, nothing to a floating tag', () => {
    const images = Object.values(services).flatMap((service) => (service.image ? [service.image] : []));
    assert.match(services.redis.image ?? '', /^redis:\d+\.\d+\.\d+(-alpine)?$/);
    for (const image of images) {
      const tag = /:([^:/]+)$/.exec(image)?.[1] ?? '';
      assert.doesNotMatch(tag, /^(|latest|\d+|\d+\.\d+)(-alpine)?$/, `${image} floats`);
    }
  });

  test('published ports listen on loopback only, and no credential has a default', () => {
    for (const [name, service] of Object.entries(services)) {
      for (const port of service.ports ?? []) assert.match(port, /^127\.0\.0\.1:\d+:\d+$/, `${name}: ${port}`);
    }
    // Host ports of services that run together (all but one profile's worker) never collide.
    for (const worker of WORKERS) {
      const together = Object.entries(services).filter(([name]) => !WORKERS.includes(name) || name === worker);
      const hostPorts = together.flatMap(([, service]) => (service.ports ?? []).map((port) => port.split(':')[1]));
      assert.equal(new Set(hostPorts).size, hostPorts.length, `ports with ${worker}: ${hostPorts.join(', ')}`);
    }
    const text = read('docker-compose.yml');
    for (const secret of ['API_KEYS', 'S3_SECRET_ACCESS_KEY']) {
      const uses = [...text.matchAll(new RegExp(`\\$\\{${secret}(:?[-?])?`, 'g'))].map((match) => match[0]);
      assert.ok(uses.length > 0, `${secret} is used`);
      for (const use of uses) assert.equal(use, `\${${secret}:?`, `${secret} must be set: no default`);
    }
  });

  test('redis persists with an append-only file on a volume, and reports health', () => {
    const command = [services.redis.command ?? []].flat().join(' ');
    assert.match(command, /--appendonly yes/);
    assert.match(command, /--maxmemory-policy noeviction/, 'BullMQ loses jobs to eviction');
    assert.ok(services.redis.volumes?.some((volume) => volume.endsWith(':/data')));
    assert.ok(services.redis.healthcheck?.test.includes('ping'));
  });

  test('the gpu worker reserves one NVIDIA GPU and runs on cuda; the cpu worker runs the compiled worker on cpu', () => {
    const devices = services['worker-gpu'].deploy?.resources?.reservations?.devices ?? [];
    assert.deepEqual(devices, [{ driver: 'nvidia', count: 1, capabilities: ['gpu'] }]);
    assert.equal(environment('worker-gpu').DEVICE, 'cuda');
    assert.equal(services['worker-cpu'].deploy, undefined);
    assert.equal(environment('worker-cpu').DEVICE, 'cpu');
    // The API's image starts the API: the cpu worker names the worker's compiled entry point.
    assert.deepEqual(services['worker-cpu'].command, ['node', 'dist/worker/main.js']);
    assert.ok(existsSync(new URL('../../src/worker/main.ts', import.meta.url)));
  });

  test('a worker stopped waits longer than SHUTDOWN_TIMEOUT_MS, which then returns its jobs', () => {
    const seconds = (value = '') => {
      const match = /^(\d+)s$/.exec(value);
      assert.ok(match, `stop_grace_period ${value} in seconds`);
      return Number(match[1]);
    };
    const { shutdownTimeoutMs } = loadConfig({});
    for (const name of WORKERS) {
      assert.equal(environment(name).SHUTDOWN_TIMEOUT_MS, undefined, 'the default applies');
      assert.ok(seconds(services[name].stop_grace_period) > shutdownTimeoutMs / 1000, name);
    }
  });

  test('api and worker share one REDIS_URL that points at the redis service', () => {
    const url = environment('api').REDIS_URL;
    for (const name of WORKERS) assert.equal(environment(name).REDIS_URL, url);
    const parsed = new URL(url);
    assert.equal(parsed.protocol, 'redis:');
    assert.equal(parsed.hostname, 'redis');
    assert.equal(parsed.port, '6379');
  });

  test('storage is the minio bucket that the one-shot job creates, for api and worker alike', () => {
    for (const name of OURS) {
      const env = environment(name);
      assert.equal(env.STORAGE, 's3', name);
      assert.equal(new URL(env.S3_ENDPOINT).host, 'minio:9000', name);
      assert.equal(env.S3_FORCE_PATH_STYLE, 'true', 'MinIO serves path-style URLs');
      assert.equal(env.S3_ACCESS_KEY_ID, environment('minio').MINIO_ROOT_USER);
      assert.equal(env.S3_SECRET_ACCESS_KEY, environment('minio').MINIO_ROOT_PASSWORD);
      assert.equal(env.MODELS_DIR, '/app/packs');
      const bucketJob = [services['create-bucket'].command ?? []].flat().join(' ');
      assert.ok(bucketJob.includes(`mc mb --ignore-existing local/${env.S3_BUCKET}`), bucketJob);
    }
  });

  test('api and worker start after healthy redis and a created bucket; checks exist where awaited', () => {
    for (const name of OURS) {
      assert.deepEqual(services[name].depends_on, {
        redis: { condition: 'service_healthy' },
        'create-bucket': { condition: 'service_completed_successfully' },
      });
    }
    assert.deepEqual(services['create-bucket'].depends_on, { minio: { condition: 'service_healthy' } });
    for (const [name, service] of Object.entries(services)) {
      for (const [target, { condition }] of Object.entries(service.depends_on ?? {})) {
        assert.ok(services[target], `${name} depends on unknown service ${target}`);
        if (condition === 'service_healthy') assert.ok(services[target].healthcheck, `${target} needs a healthcheck`);
      }
    }
  });

  test('health checks probe the ports the processes listen on; the workers publish their metrics port', () => {
    const probe = (name: string): URL => {
      const match = /http:\/\/127\.0\.0\.1:\d+\/\w+/.exec(services[name].healthcheck?.test.join(' ') ?? '');
      assert.ok(match, `${name} has an HTTP health check`);
      return new URL(match[0]);
    };
    assert.equal(probe('api').pathname, '/healthz');
    assert.equal(probe('api').port, environment('api').PORT);
    // The worker serves no API, only its metrics endpoint.
    for (const name of WORKERS) {
      const port = environment(name).WORKER_METRICS_PORT;
      assert.equal(probe(name).pathname, '/metrics');
      assert.equal(probe(name).port, port);
      assert.equal(environment(name).WORKER_METRICS_HOST, '0.0.0.0', 'reachable from outside its container');
      assert.ok(services[name].ports?.includes(`127.0.0.1:${port}:${port}`), `${name} publishes ${port}`);
    }
  });

  test('every variable given to the api and worker, or interpolated, is one config reads', () => {
    const known = configVariables();
    for (const name of OURS) {
      for (const variable of Object.keys(environment(name))) {
        assert.ok(known.has(variable), `${name} sets ${variable}, which src/config.ts does not read`);
      }
    }
    const interpolated = [...read('docker-compose.yml').matchAll(/(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)/g)].map(
      (m) => m[1],
    );
    assert.ok(interpolated.length > 0);
    for (const variable of interpolated) assert.ok(known.has(variable), `\${${variable}} is not a config variable`);
  });
});

describe('.env.example', () => {
  test('lists exactly the variables config reads, each with a comment', () => {
    const listed = new Set(parseEnvExample().keys());
    const known = configVariables();
    for (const name of known)
      assert.ok(listed.has(name), `${name} is read by src/config.ts but missing from .env.example`);
    for (const name of listed)
      assert.ok(known.has(name), `${name} is in .env.example but src/config.ts does not read it`);
  });

  test('its values are the defaults: loading them gives the configuration of an empty environment', () => {
    const fromExample = structuredClone(loadConfig(Object.fromEntries(parseEnvExample())));
    const fromNothing = structuredClone(loadConfig({}));
    assert.deepEqual(fromExample, fromNothing);
  });
});

describe('Dockerfiles', () => {
  const stages = (text: string): string[] => [...text.matchAll(/^FROM\s+(\S+)/gm)].map((m) => m[1]);

  test('the API image builds with tsc and runs the compiled API as a non-root user', () => {
    const text = read('Dockerfile');
    assert.deepEqual(stages(text), ['node:24-slim', 'node:24-slim']);
    assert.match(text, /RUN npm run build/);
    assert.match(text, /^USER node$/m);
    assert.match(text, /^CMD \["node", "dist\/api\/main\.js"\]$/m);
  });

  test('the GPU image runs on a CUDA 12 + cuDNN 9 runtime base as a non-root user', () => {
    const text = read('Dockerfile.gpu');
    const runtime = stages(text).at(-1) ?? '';
    const match = /^nvidia\/cuda:12\.(\d+)\.\d+-cudnn(\d*)-runtime-ubuntu\d+\.\d+$/.exec(runtime);
    assert.ok(match, `runtime base ${runtime} is not a CUDA 12 cuDNN runtime image`);
    const [, minor, cudnn] = match;
    // Tags without a cuDNN number carry cuDNN 9 from CUDA 12.4 on; older ones carry cuDNN 8.
    assert.ok(cudnn === '9' || (cudnn === '' && Number(minor) >= 4), `${runtime} does not carry cuDNN 9`);
    assert.match(text, /^USER (?!root)\S+$/m);
    assert.match(text, /^CMD \["node", "dist\/worker\/main\.js"\]$/m);
  });

  /** What onnxruntime-node's own install logic makes of ONNXRUNTIME_NODE_INSTALL=`value`. */
  const installDecision = (value: string): string =>
    execFileSync(
      process.execPath,
      ['-e', "process.stdout.write(String(require('onnxruntime-node/script/install-utils.js').parseInstallFlag()))"],
      { env: { ...process.env, ONNXRUNTIME_NODE_INSTALL: value } },
    ).toString();

  test('only the GPU image runs onnxruntime-node install script, and it asks for the CUDA provider', () => {
    const allowScripts = (JSON.parse(read('package.json')) as { allowScripts: Record<string, boolean> }).allowScripts;
    assert.equal(allowScripts['onnxruntime-node'], false, 'package.json denies the CUDA download');
    assert.doesNotMatch(read('.npmrc'), /onnxruntime/, 'no package-specific npm config (npm warns on it)');
    const gpu = read('Dockerfile.gpu');
    assert.match(gpu, /npm pkg set allowScripts\.onnxruntime-node=true --json/);
    const match = /ONNXRUNTIME_NODE_INSTALL=(\S+) npm ci/.exec(gpu);
    assert.ok(match, 'Dockerfile.gpu sets ONNXRUNTIME_NODE_INSTALL for npm ci');
    assert.notEqual(installDecision(match[1]), 'false', 'the install script would skip the CUDA provider');
    // Where npm still runs install scripts, the API image and CI skip the download themselves.
    for (const file of ['Dockerfile', '.ci/run']) {
      const skip = /ONNXRUNTIME_NODE_INSTALL=(\S+) npm ci/.exec(read(file));
      assert.ok(skip, `${file} sets ONNXRUNTIME_NODE_INSTALL for npm ci`);
      assert.equal(installDecision(skip[1]), 'false', `${file} skips the download`);
    }
  });

  test('the images run entry points that `npm run build` compiles', () => {
    const scripts = (JSON.parse(read('package.json')) as { scripts: Record<string, string> }).scripts;
    assert.equal(scripts.build, 'tsc -p tsconfig.build.json');
    const { compilerOptions } = JSON.parse(read('tsconfig.build.json')) as { compilerOptions: Record<string, string> };
    assert.equal(compilerOptions.rootDir, 'src');
    assert.equal(compilerOptions.outDir, 'dist');
    for (const dockerfile of ['Dockerfile', 'Dockerfile.gpu']) {
      const entry = /^CMD \["node", "dist\/(\S+)\.js"\]$/m.exec(read(dockerfile))?.[1];
      assert.ok(entry, `${dockerfile} runs a compiled file`);
      assert.ok(
        existsSync(new URL(`../../src/${entry}.ts`, import.meta.url)),
        `${dockerfile}: src/${entry}.ts is missing`,
      );
    }
  });

  test('.dockerignore keeps local state and secrets out of the build context', () => {
    const ignored = new Set(
      read('.dockerignore')
        .split('\n')
        .map((line) => line.trim()),
    );
    for (const entry of ['node_modules', 'dist', '.git', '.env', 'data']) assert.ok(ignored.has(entry), entry);
  });
});
