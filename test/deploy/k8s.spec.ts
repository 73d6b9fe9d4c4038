import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { load } from 'js-yaml';
import { objectName, validateObjects } from './k8s-schema';
import { containersOf, renderKustomization, type K8sObject } from './kustomize';

/**
 * infra/k8s rendered without a cluster (test/deploy/kustomize.ts: the Kustomize subset it uses) and
 * every object checked against the Kubernetes API schemas of kubernetes-models (k8s-schema.ts).
 * It has not run on a live cluster (docs/deploy.md).
 */
const ROOT = join(__dirname, '..', '..');
const K8S = join(ROOT, 'infra', 'k8s');
const OVERLAYS = ['local', 'production'];
const SERVICES = ['scheduler', 'credit-manager', 'scaler', 'ledger'];
const VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
const HEALTHCHECK = '/app/infra/images/healthcheck.js';

type Json = Record<string, unknown>;
const podSpecOf = (o: K8sObject) => ((o.spec as Json).template as Json).spec as Json;
const byKind = (objects: K8sObject[], kind: string) => objects.filter((o) => o.kind === kind);
const clone = <T>(value: T): T => structuredClone(value);
// Jest's asymmetric matchers are typed any: typed here so they sit in typed objects.
const containing = (text: string) => expect.stringContaining(text) as string;
const matching = (pattern: RegExp) => expect.stringMatching(pattern) as string;

const rendered = Object.fromEntries(OVERLAYS.map((name) => [name, renderKustomization(join(K8S, 'overlays', name))]));
const base = renderKustomization(join(K8S, 'base'));

describe.each(OVERLAYS)('the %s overlay', (overlay) => {
  const { objects } = rendered[overlay];

  it('renders objects that all validate against the Kubernetes API schemas', () => {
    expect(objects.length).toBeGreaterThan(10);
    expect(validateObjects(objects)).toEqual([]);
  });

  it('has a Deployment with probes and resources for each service, and the container-manager as a DaemonSet', () => {
    expect(
      byKind(objects, 'Deployment')
        .map((d) => d.metadata.name)
        .sort(),
    ).toEqual([...SERVICES].sort());
    for (const workload of [...byKind(objects, 'Deployment'), ...byKind(objects, 'DaemonSet')]) {
      const [container] = containersOf(workload) as Json[];
      expect({ workload: objectName(workload), image: container.image }).toEqual({
        workload: objectName(workload),
        image: matching(new RegExp(`mesh/service:${VERSION.replace(/\./g, '\\.')}$`)),
      });
      expect(container.args).toEqual([workload.metadata.name]);
      for (const probe of ['startupProbe', 'readinessProbe', 'livenessProbe']) {
        const command = ((container[probe] as Json).exec as Json).command as string[];
        expect(command).toEqual(['node', HEALTHCHECK, ...(probe === 'readinessProbe' ? ['--ready'] : [])]);
      }
      const resources = container.resources as { requests: Json; limits: Json };
      expect(Object.keys(resources.requests).sort()).toEqual(['cpu', 'memory']);
      expect(Object.keys(resources.limits).sort()).toEqual(['cpu', 'memory']);
    }
  });

  it('runs the Deployments as a non-root uid with a read-only root filesystem', () => {
    for (const deployment of byKind(objects, 'Deployment')) {
      expect(podSpecOf(deployment).securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 10001 });
      expect(containersOf(deployment)[0].securityContext).toMatchObject({ readOnlyRootFilesystem: true, allowPrivilegeEscalation: false });
    }
  });

  it('puts the container-manager on the worker nodes with the Docker socket and the cgroup tree', () => {
    const [daemonSet] = byKind(objects, 'DaemonSet');
    const pod = podSpecOf(daemonSet);
    expect(pod.nodeSelector).toEqual({ 'mesh.dev/worker': 'true' });
    const volumes = pod.volumes as { name: string; hostPath?: { path: string } }[];
    expect(volumes.filter((v) => v.hostPath).map((v) => v.hostPath?.path)).toEqual(['/var/run/docker.sock', '/sys/fs/cgroup']);
    const env = containersOf(daemonSet)[0].env as { name: string; value?: string }[];
    expect(env.find((e) => e.name === 'MESH_CGROUP_ROOT')?.value).toBe('/host/sys/fs/cgroup');
  });

  it('has a PodDisruptionBudget selecting each workload, and none that blocks a drain of a single replica', () => {
    const budgets = byKind(objects, 'PodDisruptionBudget');
    for (const workload of [...byKind(objects, 'Deployment'), ...byKind(objects, 'DaemonSet')]) {
      const labels = ((workload.spec as Json).template as { metadata: { labels: Json } }).metadata.labels;
      const matching = budgets.filter((b) =>
        Object.entries(((b.spec as Json).selector as { matchLabels: Json }).matchLabels).every(([k, v]) => labels[k] === v),
      );
      expect({ workload: objectName(workload), budgets: matching.length }).toEqual({ workload: objectName(workload), budgets: 1 });
      const replicas = (workload.spec as Json).replicas;
      if (replicas === 1) expect((matching[0].spec as Json).minAvailable).toBeUndefined();
    }
  });

  it('refers only to Secrets and ConfigMaps it renders', () => {
    const names = (kind: string) => new Set(byKind(objects, kind).map((o) => o.metadata.name));
    const [secrets, configMaps] = [names('Secret'), names('ConfigMap')];
    for (const workload of [...byKind(objects, 'Deployment'), ...byKind(objects, 'DaemonSet')]) {
      for (const volume of (podSpecOf(workload).volumes as { secret?: { secretName: string } }[]) ?? []) {
        if (volume.secret) expect(secrets).toContain(volume.secret.secretName);
      }
      for (const from of (containersOf(workload)[0].envFrom as { configMapRef: { name: string } }[]) ?? []) {
        expect(configMaps).toContain(from.configMapRef.name);
      }
    }
  });

  it('sets every namespaced object in the overlay namespace', () => {
    const [namespace] = byKind(objects, 'Namespace');
    for (const object of objects.filter((o) => o.kind !== 'Namespace')) expect(object.metadata.namespace).toBe(namespace.metadata.name);
  });
});

describe('the schema check', () => {
  const deployment = () => clone(byKind(rendered.production.objects, 'Deployment')[0]);

  it('refuses a misspelled field (replicass), naming it', () => {
    const typo = deployment();
    (typo.spec as Json).replicass = (typo.spec as Json).replicas;
    delete (typo.spec as Json).replicas;
    const problems = validateObjects([typo]);
    expect(problems).toEqual([{ object: objectName(typo), message: containing('replicass') }]);
  });

  it('refuses a misspelled field deep in a pod template (periodSecond in a probe)', () => {
    const typo = deployment();
    const probe = (containersOf(typo)[0] as { readinessProbe: Json }).readinessProbe;
    probe.periodSecond = probe.periodSeconds;
    delete probe.periodSeconds;
    expect(validateObjects([typo])).toEqual([{ object: objectName(typo), message: containing('periodSecond') }]);
  });

  it('refuses a value of the wrong type (replicas as a string)', () => {
    const wrong = deployment();
    (wrong.spec as Json).replicas = 'three';
    expect(validateObjects([wrong]).map((p) => p.object)).toContain(objectName(wrong));
  });

  it('renders the base alone as valid objects (the overlays add the namespace and the Secrets)', () => {
    expect(validateObjects(base.objects)).toEqual([]);
    expect(byKind(base.objects, 'Secret')).toEqual([]);
  });

  it('renders the Secrets from files that are not in git (placeholders here), never from values in the manifests', () => {
    for (const overlay of OVERLAYS) {
      const files = rendered[overlay].placeholderFiles.map((f) => f.slice(K8S.length + 1));
      expect(files.every((f) => f.startsWith(`overlays/${overlay}/secrets/`))).toBe(true);
      expect(
        byKind(rendered[overlay].objects, 'Secret')
          .map((s) => s.metadata.name)
          .sort(),
      ).toEqual(overlay === 'production' ? ['mesh-ledger-keys', 'mesh-nats-creds'] : ['mesh-ledger-keys']);
    }
  });
});

describe('the nats Helm values (infra/k8s/nats-values.yaml)', () => {
  const values = load(readFileSync(join(K8S, 'nats-values.yaml'), 'utf8')) as Json;
  const chartDefaults = load(readFileSync(join(K8S, 'vendor', 'nats-chart-2.14.2.values.yaml'), 'utf8')) as Json;

  /** Key paths of `values` that the chart's values.yaml does not have (below an empty map anything goes: env, merge...). */
  function unknownKeys(given: Json, defaults: Json, path = ''): string[] {
    return Object.entries(given).flatMap(([key, value]) => {
      const here = path ? `${path}.${key}` : key;
      if (!(key in defaults)) return [here];
      const known = defaults[key];
      const isMap = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
      if (isMap(value) && isMap(known) && Object.keys(known).length > 0) return unknownKeys(value, known, here);
      return [];
    });
  }

  it('uses only keys the chart has (the chart ships no values.schema.json)', () => {
    expect(unknownKeys(values, chartDefaults)).toEqual([]);
    expect(unknownKeys({ config: { cluster: { replica: 3 } } }, chartDefaults)).toEqual(['config.cluster.replica']);
  });

  it('asks for a 3-replica JetStream cluster on persistent volumes', () => {
    expect(values).toMatchObject({
      config: { cluster: { enabled: true, replicas: 3 }, jetstream: { enabled: true, fileStore: { enabled: true, pvc: { enabled: true } } } },
    });
  });

  it('gives the scheduler the JetStream store size and the services 3 event replicas', () => {
    const maxSize = (((values.config as Json).jetstream as Json).fileStore as Json).maxSize as string;
    const gib = Number(/^(\d+)Gi$/.exec(maxSize)?.[1]);
    const scheduler = byKind(base.objects, 'Deployment').find((d) => d.metadata.name === 'scheduler') as K8sObject;
    const env = (containersOf(scheduler)[0] as { env: { name: string; value: string }[] }).env;
    expect(env.find((e) => e.name === 'STORAGE_CAPACITY_BYTES')?.value).toBe(String(gib * 1024 ** 3));
    const [config] = byKind(base.objects, 'ConfigMap');
    expect((config.data as Json).EVENT_REPLICAS).toBe(String((values.config as { cluster: { replicas: number } }).cluster.replicas));
  });
});
