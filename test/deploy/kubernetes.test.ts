// The Kubernetes manifests (deploy/kubernetes): each overlay rendered (test/deploy/kustomize.ts,
// which implements the kustomize features the manifests use; checked against `kubectl
// kustomize` wherever kubectl is installed), every object parsed with the schemas of
// kubernetes-models and @kubernetes-models/keda, then what the schemas cannot see: probes on
// declared ports, the worker's grace period against its shutdown, the autoscaler's target and
// metric, the GPU request, settings the service reads, and no credential in any file.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, test } from 'node:test';
import { ScaledObject } from '@kubernetes-models/keda/keda.sh/v1alpha1';
import { ConfigMap, type IContainer, type IProbe, Secret, Service } from 'kubernetes-models/v1';
import { Deployment } from 'kubernetes-models/apps/v1';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { parseAllDocuments } from 'yaml';
import { loadConfig } from '../../src/config.js';
import { QUEUE_NAMES } from '../../src/contracts/queues.js';
import { configVariables } from './config-variables.js';
import { type Manifest, renderKustomization } from './kustomize.js';

const root = (path: string) => fileURLToPath(new URL(`../../${path}`, import.meta.url));
const KUSTOMIZATIONS = ['overlays/cpu', 'overlays/gpu', 'secrets-example'];
const OVERLAYS = ['cpu', 'gpu'] as const;

/** The schema of each kind the manifests may hold; any other kind fails the test. */
const MODELS = {
  'v1/ConfigMap': ConfigMap,
  'v1/Secret': Secret,
  'v1/Service': Service,
  'apps/v1/Deployment': Deployment,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget,
  'keda.sh/v1alpha1/ScaledObject': ScaledObject,
} as const;

/** Renders and validates: every object becomes its model, which throws on a schema violation. */
function load(kustomization: string) {
  return renderKustomization(root(`deploy/kubernetes/${kustomization}`)).map((manifest) => {
    const Model = MODELS[`${manifest.apiVersion}/${manifest.kind}` as keyof typeof MODELS];
    assert.ok(Model, `${kustomization}: no schema for ${manifest.apiVersion} ${manifest.kind}`);
    const model = new Model(manifest as never);
    try {
      model.validate();
    } catch (error) {
      assert.fail(`${kustomization}: ${manifest.kind} ${manifest.metadata.name}: ${(error as Error).message}`);
    }
    return model;
  });
}

const rendered = Object.fromEntries(KUSTOMIZATIONS.map((name) => [name, load(name)]));
const examples = rendered['secrets-example'].filter((object) => object instanceof Secret);

function one<T>(objects: unknown[], type: abstract new (...args: never[]) => T, name: string): T {
  const found = objects.filter(
    (object): object is T =>
      object instanceof type && (object as { metadata?: { name?: string } }).metadata?.name === name,
  );
  assert.equal(found.length, 1, `one ${type.name} ${name}`);
  return found[0];
}

const overlay = (name: (typeof OVERLAYS)[number]) => {
  const objects = rendered[`overlays/${name}`];
  const api = one(objects, Deployment, 'dalle-serve-api');
  const worker = one(objects, Deployment, 'dalle-serve-worker');
  const container = (deployment: Deployment): IContainer => {
    const containers = deployment.spec?.template.spec?.containers ?? [];
    assert.equal(containers.length, 1, `${deployment.metadata?.name} runs one container`);
    return containers[0];
  };
  return {
    objects,
    api,
    worker,
    apiContainer: container(api),
    workerContainer: container(worker),
    config: one(objects, ConfigMap, 'dalle-serve-config').data ?? {},
    scaler: one(objects, ScaledObject, 'dalle-serve-worker'),
  };
};

/** A container's environment as the process sees it: the ConfigMap, then env (values or the example Secrets). */
function environment(container: IContainer, config: Record<string, string>): Record<string, string> {
  const env: Record<string, string> = {};
  for (const source of container.envFrom ?? []) {
    assert.equal(source.configMapRef?.name, 'dalle-serve-config', 'settings come from the ConfigMap');
    Object.assign(env, config);
  }
  for (const variable of container.env ?? []) {
    const ref = variable.valueFrom?.secretKeyRef;
    if (ref) {
      const secret = examples.find((example) => example.metadata?.name === ref.name);
      assert.ok(secret, `${variable.name}: the example Secret ${ref.name} exists`);
      assert.ok(ref.key in (secret.data ?? {}), `${variable.name}: ${ref.name} has the key ${ref.key}`);
      env[variable.name] = Buffer.from(secret.data?.[ref.key] ?? '', 'base64').toString();
    } else {
      assert.equal(typeof variable.value, 'string', `${variable.name} has a value or a Secret`);
      env[variable.name] = variable.value ?? '';
    }
  }
  return env;
}

function probes(container: IContainer): Array<[string, IProbe]> {
  const all = {
    liveness: container.livenessProbe,
    readiness: container.readinessProbe,
    startup: container.startupProbe,
  };
  return Object.entries(all).filter((entry): entry is [string, IProbe] => entry[1] !== undefined);
}

/** The container port a probe or Service targets, by name or number; fails when none is declared. */
function declaredPort(container: IContainer, port: number | string | undefined): number {
  const match = container.ports?.find((declared) => declared.name === port || declared.containerPort === port);
  assert.ok(match, `${container.name}: port ${String(port)} is declared`);
  return match.containerPort;
}

const labelsMatch = (selector: Record<string, string> | undefined, labels: Record<string, string> | undefined) =>
  selector !== undefined &&
  Object.keys(selector).length > 0 &&
  Object.entries(selector).every(([key, value]) => labels?.[key] === value);

describe('kubernetes manifests', () => {
  test('every kustomization renders, and every object passes its schema', () => {
    for (const name of OVERLAYS) {
      const kinds = rendered[`overlays/${name}`].map((object) => `${object.kind}/${object.metadata?.name}`).sort();
      assert.deepEqual(kinds, [
        'ConfigMap/dalle-serve-config',
        'Deployment/dalle-serve-api',
        'Deployment/dalle-serve-worker',
        'PodDisruptionBudget/dalle-serve-api',
        'PodDisruptionBudget/dalle-serve-worker',
        'ScaledObject/dalle-serve-worker',
        'Service/dalle-serve-api',
      ]);
    }
    assert.deepEqual(examples.map((secret) => secret.metadata?.name).sort(), [
      'dalle-serve-keys',
      'dalle-serve-storage',
    ]);
  });

  test('kubectl kustomize renders the same objects', (t) => {
    if (spawnSync('kubectl', ['version', '--client'], { stdio: 'ignore' }).status !== 0) {
      t.skip('kubectl is not installed');
      return;
    }
    const sorted = (objects: Manifest[]) =>
      [...objects].sort((a, b) => `${a.kind}/${a.metadata.name}`.localeCompare(`${b.kind}/${b.metadata.name}`));
    for (const name of KUSTOMIZATIONS) {
      const dir = root(`deploy/kubernetes/${name}`);
      const output = execFileSync('kubectl', ['kustomize', dir], { encoding: 'utf8' });
      const fromKubectl = parseAllDocuments(output).map((document) => document.toJS() as Manifest);
      assert.deepEqual(sorted(renderKustomization(dir)), sorted(fromKubectl), name);
    }
  });

  for (const name of OVERLAYS) {
    describe(`overlay ${name}`, () => {
      const o = overlay(name);

      test('every probe targets a port its container declares; the API probes /healthz and /readyz', () => {
        for (const deployment of [o.api, o.worker]) {
          const [container] = deployment.spec?.template.spec?.containers ?? [];
          assert.ok(container.image, `${deployment.metadata?.name} names its image`);
          assert.ok(probes(container).length >= 2, `${deployment.metadata?.name} has liveness and readiness probes`);
          for (const [kind, probe] of probes(container)) {
            assert.ok(probe.httpGet, `${container.name} ${kind} probe is an HTTP GET`);
            declaredPort(container, probe.httpGet.port);
          }
        }
        assert.equal(o.apiContainer.livenessProbe?.httpGet?.path, '/healthz');
        assert.equal(o.apiContainer.readinessProbe?.httpGet?.path, '/readyz');
        const env = environment(o.apiContainer, o.config);
        assert.equal(declaredPort(o.apiContainer, o.apiContainer.livenessProbe?.httpGet?.port), Number(env.PORT));
      });

      test("the worker's probes read its metrics port, where its settings make it listen", () => {
        const env = environment(o.workerContainer, o.config);
        const config = loadConfig(env);
        assert.ok(o.workerContainer.startupProbe, 'a startup probe covers loading the packs');
        for (const [kind, probe] of probes(o.workerContainer)) {
          assert.equal(probe.httpGet?.path, '/metrics', kind);
          assert.equal(declaredPort(o.workerContainer, probe.httpGet?.port), config.workerMetricsPort, kind);
        }
        assert.equal(config.workerMetricsHost, '0.0.0.0', 'the kubelet and Prometheus reach the pod address');
      });

      test('the Service and the disruption budgets select the pods they are for', () => {
        const service = one(o.objects, Service, 'dalle-serve-api');
        assert.ok(labelsMatch(service.spec?.selector, o.api.spec?.template.metadata?.labels));
        assert.ok(!labelsMatch(service.spec?.selector, o.worker.spec?.template.metadata?.labels));
        for (const port of service.spec?.ports ?? []) declaredPort(o.apiContainer, port.targetPort);
        for (const deployment of [o.api, o.worker]) {
          const labels = deployment.spec?.template.metadata?.labels;
          assert.ok(labelsMatch(deployment.spec?.selector.matchLabels, labels), 'the Deployment selects its pods');
          const budgets = o.objects.filter(
            (object) =>
              object instanceof PodDisruptionBudget && labelsMatch(object.spec?.selector?.matchLabels, labels),
          );
          assert.equal(budgets.length, 1, `one PodDisruptionBudget for ${deployment.metadata?.name}`);
        }
      });

      test("the worker's grace period outlasts SHUTDOWN_TIMEOUT_MS plus its chunk budget", () => {
        const chunkSeconds = Number(o.worker.metadata?.annotations?.['dalle-serve/chunk-seconds']);
        assert.ok(chunkSeconds > 0, 'the chunk budget is written on the worker Deployment');
        const { shutdownTimeoutMs } = loadConfig(environment(o.workerContainer, o.config));
        const grace = o.worker.spec?.template.spec?.terminationGracePeriodSeconds ?? 30;
        assert.ok(
          grace > shutdownTimeoutMs / 1000 + chunkSeconds,
          `grace ${grace} s > ${shutdownTimeoutMs / 1000} s + ${chunkSeconds} s`,
        );
        // The API's covers its preStop pause and the longest classify wait it serves.
        const apiConfig = loadConfig(environment(o.apiContainer, o.config));
        const pause = o.apiContainer.lifecycle?.preStop?.sleep?.seconds ?? 0;
        const apiGrace = o.api.spec?.template.spec?.terminationGracePeriodSeconds ?? 30;
        assert.ok(apiGrace > pause + apiConfig.classifyTimeoutMs / 1000, `API grace ${apiGrace} s`);
      });

      test('KEDA scales the worker Deployment on all outstanding generate jobs, never to zero', () => {
        const { scaleTargetRef, minReplicaCount, triggers } = o.scaler.spec;
        assert.equal(scaleTargetRef.name, o.worker.metadata?.name);
        assert.equal(scaleTargetRef.kind ?? 'Deployment', 'Deployment');
        assert.ok((minReplicaCount ?? 0) >= 1, 'minReplicaCount keeps a worker (see the ScaledObject)');
        assert.equal(o.worker.spec?.replicas, undefined, 'the autoscaler owns the replica count');
        assert.equal(triggers.length, 1);
        const [trigger] = triggers;
        assert.equal(trigger.type, 'prometheus');
        assert.equal(trigger.metricType, 'AverageValue', 'work per worker');
        const query = trigger.metadata.query ?? '';
        const series = /(\w+)\{queue="(\w+)"\}/.exec(query);
        assert.ok(series, query);
        assert.equal(series[2], 'generate');
        assert.ok((QUEUE_NAMES as readonly string[]).includes(series[2]));
        // The metric the API exports, counting waiting, prioritized, delayed and active.
        const metrics = readFileSync(root('src/api/plugins/metrics.ts'), 'utf8');
        assert.ok(metrics.includes(`name: '${series[1]}'`), `the API exports ${series[1]}`);
        assert.equal(series[1], 'dalle_queue_outstanding_jobs');
        assert.ok(Number(trigger.metadata.threshold) > 0);
      });

      test('every setting and secret given to the processes is one the service reads, and they load', () => {
        const known = configVariables();
        for (const key of Object.keys(o.config)) assert.ok(known.has(key), `ConfigMap sets ${key}, never read`);
        for (const container of [o.apiContainer, o.workerContainer]) {
          const env = environment(container, o.config);
          for (const key of Object.keys(env)) assert.ok(known.has(key), `${container.name} sets ${key}, never read`);
          assert.doesNotThrow(() => loadConfig(env), container.name);
        }
        assert.equal(loadConfig(environment(o.workerContainer, o.config)).device, name === 'gpu' ? 'cuda' : 'cpu');
      });

      test(name === 'gpu' ? 'the worker requests one NVIDIA GPU on GPU nodes' : 'nothing asks for a GPU', () => {
        const gpus = o.workerContainer.resources?.limits?.['nvidia.com/gpu'];
        const spec = o.worker.spec?.template.spec;
        if (name === 'cpu') {
          assert.equal(gpus, undefined);
          assert.equal(o.apiContainer.resources?.limits?.['nvidia.com/gpu'], undefined);
          return;
        }
        assert.equal(Number(gpus), 1);
        assert.ok(Object.keys(spec?.nodeSelector ?? {}).some((label) => label.startsWith('nvidia.com/')));
        assert.ok(spec?.tolerations?.some((toleration) => toleration.key === 'nvidia.com/gpu'));
        assert.notEqual(o.workerContainer.image, o.apiContainer.image, 'the worker runs the CUDA image');
      });
    });
  }

  test('no file holds a credential: Secrets are examples with empty values, settings carry none', () => {
    for (const [name, objects] of Object.entries(rendered)) {
      for (const object of objects) {
        if (!(object instanceof Secret)) continue;
        assert.equal(object.stringData, undefined, `${name}: ${object.metadata?.name}`);
        for (const [key, value] of Object.entries(object.data ?? {})) {
          assert.equal(Buffer.from(value, 'base64').toString(), '', `${name}: ${object.metadata?.name} ${key}`);
        }
      }
    }
    const secretNames = new Set(examples.flatMap((secret) => Object.keys(secret.data ?? {})));
    for (const name of OVERLAYS) {
      const o = overlay(name);
      for (const key of secretNames) assert.ok(!(key in o.config), `${key} is in the ConfigMap`);
      for (const container of [o.apiContainer, o.workerContainer]) {
        for (const variable of container.env ?? []) {
          const credential = secretNames.has(variable.name) || /KEY|SECRET|PASSWORD|TOKEN/.test(variable.name);
          if (credential) assert.ok(variable.valueFrom?.secretKeyRef, `${variable.name} comes from a Secret`);
        }
      }
      assert.equal(new URL(o.config.REDIS_URL).password, '', 'a Redis password would be a credential');
    }
  });
});
