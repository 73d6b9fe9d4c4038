import { existsSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { loadAll } from 'js-yaml';

/**
 * The subset of Kustomize that infra/k8s uses, to render the overlays in CI without a cluster or a
 * kustomize binary (none is packaged for npm; Debian's kubectl 1.20 embeds kustomize 2.0, which
 * predates the `labels` and `patches` fields). Supported: resources (files and folders),
 * secretGenerator (files, with disableNameSuffixHash), patches (strategic merge by kind and name),
 * images, labels (metadata only) and namespace. Anything else is refused, so a kustomization that
 * uses more fails here instead of rendering differently from the real tool.
 */
export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; [key: string]: unknown };
  [key: string]: unknown;
}

export interface Rendered {
  objects: K8sObject[];
  /** Secret files that were absent (not in git): rendered with a placeholder value. */
  placeholderFiles: string[];
}

const KNOWN_FIELDS = new Set(['apiVersion', 'kind', 'resources', 'patches', 'images', 'labels', 'namespace', 'secretGenerator', 'generatorOptions']);
const CLUSTER_SCOPED = new Set(['Namespace']);
/** Strategic merge keys of the lists we patch (the Kubernetes API's patchMergeKey); other lists are replaced. */
const MERGE_KEYS: Record<string, string> = {
  containers: 'name',
  initContainers: 'name',
  env: 'name',
  volumes: 'name',
  volumeMounts: 'mountPath',
  topologySpreadConstraints: 'topologyKey',
};
/** Bounds the folder nesting (a cycle of resources would otherwise recurse forever). */
const DEPTH_MAX = 8;

type Json = Record<string, unknown>;
const isObject = (value: unknown): value is Json => typeof value === 'object' && value !== null && !Array.isArray(value);

interface Kustomization {
  resources?: string[];
  patches?: { path: string }[];
  images?: { name: string; newName?: string; newTag?: string }[];
  labels?: { pairs: Record<string, string>; includeSelectors?: boolean }[];
  namespace?: string;
  secretGenerator?: { name: string; files: string[] }[];
  generatorOptions?: { disableNameSuffixHash?: boolean };
}

export function readYamlDocuments(path: string): unknown[] {
  return loadAll(readFileSync(path, 'utf8')).filter((doc) => doc !== null && doc !== undefined);
}

export function renderKustomization(dir: string, depth = 0): Rendered {
  if (depth > DEPTH_MAX) throw new Error(`${dir}: kustomizations nested deeper than ${DEPTH_MAX}`);
  const file = join(dir, 'kustomization.yaml');
  const [doc] = readYamlDocuments(file);
  if (!isObject(doc)) throw new Error(`${file}: not a mapping`);
  const unknown = Object.keys(doc).filter((key) => !KNOWN_FIELDS.has(key));
  if (unknown.length) throw new Error(`${file}: fields not supported by this renderer: ${unknown.join(', ')}`);
  const k = doc as Kustomization;
  const objects: K8sObject[] = [];
  const placeholderFiles: string[] = [];

  for (const entry of k.resources ?? []) {
    const path = resolve(dir, entry);
    if (statSync(path).isDirectory()) {
      const sub = renderKustomization(path, depth + 1);
      objects.push(...sub.objects);
      placeholderFiles.push(...sub.placeholderFiles);
    } else objects.push(...readYamlDocuments(path).map((o) => asObject(o, path)));
  }

  if (k.secretGenerator?.length && !k.generatorOptions?.disableNameSuffixHash) {
    throw new Error(`${file}: name suffix hashes are not implemented here (set generatorOptions.disableNameSuffixHash)`);
  }
  for (const generator of k.secretGenerator ?? []) {
    const data: Record<string, string> = {};
    for (const spec of generator.files) {
      const [key, relative] = spec.includes('=') ? spec.split('=', 2) : [spec.split('/').at(-1) ?? spec, spec];
      const path = resolve(dir, relative);
      let content = `placeholder for ${relative}`;
      if (existsSync(path)) content = readFileSync(path, 'utf8');
      else placeholderFiles.push(path);
      data[key] = Buffer.from(content).toString('base64');
    }
    objects.push({ apiVersion: 'v1', kind: 'Secret', metadata: { name: generator.name }, type: 'Opaque', data });
  }

  for (const patch of k.patches ?? []) {
    const path = resolve(dir, patch.path);
    for (const p of readYamlDocuments(path).map((o) => asObject(o, path))) {
      const targets = objects.filter((o) => o.kind === p.kind && o.metadata.name === p.metadata.name);
      if (targets.length !== 1) throw new Error(`${path}: patch ${p.kind}/${p.metadata.name} matches ${targets.length} objects, not 1`);
      strategicMerge(targets[0], p);
    }
  }

  for (const object of objects) {
    for (const label of k.labels ?? []) {
      if (label.includeSelectors) throw new Error(`${file}: labels.includeSelectors is not implemented here`);
      object.metadata.labels = { ...object.metadata.labels, ...label.pairs };
    }
    if (k.namespace && !CLUSTER_SCOPED.has(object.kind)) object.metadata.namespace = k.namespace;
    for (const image of k.images ?? []) setImage(object, image);
  }
  return { objects, placeholderFiles };
}

function asObject(doc: unknown, path: string): K8sObject {
  if (
    !isObject(doc) ||
    typeof doc.kind !== 'string' ||
    typeof doc.apiVersion !== 'string' ||
    !isObject(doc.metadata) ||
    typeof doc.metadata.name !== 'string'
  ) {
    throw new Error(`${path}: a document without apiVersion, kind and metadata.name`);
  }
  return doc as K8sObject;
}

/** Strategic merge patch: maps merged, null deletes, lists with a merge key merged by it, other lists replaced. */
export function strategicMerge(target: Json, patch: Json): void {
  for (const [key, value] of Object.entries(patch)) {
    if (key.startsWith('$')) throw new Error(`patch directive ${key} is not implemented here`);
    if (value === null) delete target[key];
    else if (Array.isArray(value) && MERGE_KEYS[key] && Array.isArray(target[key])) {
      const mergeKey = MERGE_KEYS[key];
      const list = target[key] as Json[];
      for (const item of value as Json[]) {
        const existing = list.find((e) => e[mergeKey] === item[mergeKey]);
        if (existing) strategicMerge(existing, item);
        else list.push(item);
      }
    } else if (isObject(value) && isObject(target[key])) strategicMerge(target[key], value);
    else target[key] = value;
  }
}

/** The pod template's containers of a workload (Deployment, DaemonSet...), [] for other kinds. */
export function containersOf(object: K8sObject): Json[] {
  const spec = object.spec;
  if (!isObject(spec) || !isObject(spec.template) || !isObject(spec.template.spec)) return [];
  const pod = spec.template.spec;
  return [...((pod.containers as Json[] | undefined) ?? []), ...((pod.initContainers as Json[] | undefined) ?? [])];
}

function setImage(object: K8sObject, image: { name: string; newName?: string; newTag?: string }): void {
  for (const container of containersOf(object)) {
    const current = String(container.image);
    const colon = current.lastIndexOf(':');
    const [name, tag] = colon > current.lastIndexOf('/') ? [current.slice(0, colon), current.slice(colon + 1)] : [current, undefined];
    if (name !== image.name) continue;
    const newTag = image.newTag ?? tag;
    container.image = `${image.newName ?? name}${newTag ? `:${newTag}` : ''}`;
  }
}
