// Renders a kustomization as `kubectl kustomize` does, for the subset deploy/kubernetes uses:
// `resources` (files and folders with a kustomization), `patches` by path (strategic merge,
// the target named by the patch's own kind and name) and `secretGenerator` from env files
// without the name hash. Anything else is refused, so the manifests stay inside what this
// renders; where kubectl is installed, the suite also compares this with kubectl's output.
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments, parse } from 'yaml';

export interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string; [key: string]: unknown };
  [key: string]: unknown;
}

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

const KNOWN_KEYS = new Set(['apiVersion', 'kind', 'resources', 'patches', 'secretGenerator', 'generatorOptions']);

/**
 * Lists merged element by element (by this key) in built-in kinds, as their Go types declare
 * (`patchMergeKey`); every other list is replaced whole, as for a custom resource.
 */
const MERGE_KEYS: Record<string, string> = {
  containers: 'name',
  initContainers: 'name',
  env: 'name',
  volumes: 'name',
  volumeMounts: 'mountPath',
};

const isObject = (value: Json | undefined): value is JsonObject =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

function mergeList(target: Json[], patch: Json[], key: string): Json[] {
  const keyOf = (item: Json) => (isObject(item) ? item[key] : undefined);
  const merged = target.map((item) => {
    const match = patch.find((candidate) => keyOf(candidate) === keyOf(item));
    return match === undefined ? item : merge(item, match, true);
  });
  // kustomize puts the elements only the patch has ahead of the target's.
  const added = patch.filter((item) => !target.some((existing) => keyOf(existing) === keyOf(item)));
  return [...added, ...merged];
}

/** A strategic merge of `patch` into `target`: maps merge, null deletes, lists per MERGE_KEYS. */
function merge(target: Json, patch: Json, builtIn: boolean): Json {
  if (!isObject(target) || !isObject(patch)) return patch;
  const result: JsonObject = { ...target };
  for (const [key, value] of Object.entries(patch)) {
    if (key.startsWith('$')) throw new Error(`patch directive ${key} is not supported here`);
    const current = result[key];
    if (value === null) delete result[key];
    else if (builtIn && Array.isArray(value) && Array.isArray(current) && key in MERGE_KEYS)
      result[key] = mergeList(current, value, MERGE_KEYS[key]);
    else result[key] = current === undefined ? value : merge(current, value, builtIn);
  }
  return result;
}

function readYaml(path: string): Manifest[] {
  return parseAllDocuments(readFileSync(path, 'utf8'))
    .map((document) => document.toJS() as Manifest | null)
    .filter((manifest): manifest is Manifest => manifest !== null);
}

/** KEY=VALUE lines; # comments and blank lines skipped, as kustomize reads `envs`. */
function readEnvFile(path: string): Record<string, string> {
  const entries = readFileSync(path, 'utf8')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'))
    .map((line) => {
      const at = line.indexOf('=');
      if (at < 1) throw new Error(`${path}: "${line}" is not KEY=VALUE`);
      return [line.slice(0, at), line.slice(at + 1)] as const;
    });
  return Object.fromEntries(entries);
}

interface Kustomization {
  resources?: string[];
  patches?: Array<{ path: string }>;
  secretGenerator?: Array<{ name: string; envs: string[] }>;
  generatorOptions?: { disableNameSuffixHash?: boolean };
}

/** The objects `kubectl kustomize dir` prints, in the order of their resources. */
export function renderKustomization(dir: string): Manifest[] {
  const spec = parse(readFileSync(join(dir, 'kustomization.yaml'), 'utf8')) as Kustomization;
  for (const key of Object.keys(spec)) {
    if (!KNOWN_KEYS.has(key)) throw new Error(`${dir}: kustomization field ${key} is not supported here`);
  }
  const objects = (spec.resources ?? []).flatMap((resource) => {
    const path = join(dir, resource);
    return statSync(path).isDirectory() ? renderKustomization(path) : readYaml(path);
  });
  for (const { path, ...rest } of spec.patches ?? []) {
    if (Object.keys(rest).length > 0) throw new Error(`${dir}: only patches by path are supported here`);
    for (const patch of readYaml(join(dir, path))) {
      const index = objects.findIndex(
        (object) => object.kind === patch.kind && object.metadata.name === patch.metadata.name,
      );
      if (index < 0) throw new Error(`${dir}/${path}: no ${patch.kind} ${patch.metadata.name} to patch`);
      const builtIn = !objects[index].apiVersion.includes('.') || objects[index].apiVersion.includes('k8s.io/');
      objects[index] = merge(objects[index] as unknown as Json, patch as unknown as Json, builtIn) as Manifest;
    }
  }
  if (spec.secretGenerator && spec.generatorOptions?.disableNameSuffixHash !== true) {
    throw new Error(`${dir}: generated names carry a hash unless disableNameSuffixHash; not supported here`);
  }
  for (const { name, envs, ...rest } of spec.secretGenerator ?? []) {
    if (Object.keys(rest).length > 0) throw new Error(`${dir}: only secretGenerator envs are supported here`);
    const values = Object.assign({}, ...envs.map((file) => readEnvFile(join(dir, file)))) as Record<string, string>;
    const data = Object.fromEntries(
      Object.entries(values).map(([key, value]) => [key, Buffer.from(value).toString('base64')]),
    );
    objects.push({ apiVersion: 'v1', kind: 'Secret', metadata: { name }, type: 'Opaque', data });
  }
  return objects;
}
