import { dirname, join } from 'node:path';
import ts from 'typescript';
import type { K8sObject } from './kustomize';

/**
 * Checks Kubernetes objects against the API schemas of the npm package kubernetes-models (4.x: the
 * 5.x line is ESM-only and wants Node 22), two ways:
 *   1. its validate(): types, formats (int32, quantities...), required fields, enums;
 *   2. its TypeScript interfaces, by type-checking each object as an object literal: the compiler's
 *      excess-property check refuses a field the API does not have (`replicass`), which validate()
 *      lets through (its schemas allow additional properties).
 */
const PACKAGE = 'kubernetes-models';
/** The kinds infra/k8s renders, by apiVersion: the module path in the package is `<apiVersion>/<Kind>`. */
const KINDS: Record<string, string[]> = {
  v1: ['ConfigMap', 'Secret', 'Namespace', 'Service'],
  'apps/v1': ['Deployment', 'DaemonSet', 'StatefulSet'],
  'policy/v1': ['PodDisruptionBudget'],
};
/** Bounds the error text of one object (a bad file can produce thousands of issues). */
const ISSUES_MAX = 20;

export interface Problem {
  object: string;
  message: string;
}

/** The package folder, or a sentence saying how to install it. */
export function kubernetesModelsDir(): string {
  try {
    return dirname(require.resolve(`${PACKAGE}/package.json`, { paths: [process.cwd(), ...(process.env.NODE_PATH ?? '').split(':').filter(Boolean)] }));
  } catch {
    throw new Error(`${PACKAGE} is not installed: it is a devDependency of the deploy specs (npm i -D ${PACKAGE}@4.5.1)`);
  }
}

function modulePath(object: K8sObject): string {
  if (!KINDS[object.apiVersion]?.includes(object.kind))
    throw new Error(`${objectName(object)}: no schema wired for ${object.apiVersion} ${object.kind} (add it to KINDS)`);
  return `${object.apiVersion}/${object.kind}`;
}

export function objectName(object: K8sObject): string {
  return `${object.kind}/${object.metadata?.name ?? '?'}`;
}

/** Every problem of every object (empty when all are valid). */
export function validateObjects(objects: K8sObject[]): Problem[] {
  const dir = kubernetesModelsDir();
  const problems: Problem[] = [];
  for (const object of objects) {
    let path: string;
    try {
      path = modulePath(object);
    } catch (err) {
      problems.push({ object: objectName(object), message: (err as Error).message });
      continue;
    }
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- the module is chosen by the object's kind
    const Model = (require(join(dir, path)) as Record<string, new (data: unknown) => { validate(): void }>)[object.kind];
    try {
      new Model(object).validate();
    } catch (err) {
      problems.push({ object: objectName(object), message: (err as Error).message.slice(0, 2000) });
    }
  }
  problems.push(...typeCheck(objects, dir));
  return problems;
}

/** Type-checks every object against the package's interface of its kind (one virtual source file). */
function typeCheck(objects: K8sObject[], dir: string): Problem[] {
  const file = join(process.cwd(), '__k8s_objects__.ts');
  const parts: string[] = [];
  /** Where each object's declaration starts in the source, to name the object of a diagnostic. */
  const starts: { offset: number; object: string }[] = [];
  let offset = 0;
  const add = (text: string) => {
    parts.push(text);
    offset += text.length + 1;
  };
  objects.forEach((object, i) => {
    let path: string;
    try {
      path = modulePath(object);
    } catch {
      return; // reported by validateObjects
    }
    add(`import type { I${object.kind} as T${i} } from '${PACKAGE}/${path}';`);
    starts.push({ offset, object: objectName(object) });
    add(`export const o${i}: T${i} = ${JSON.stringify(object, null, 2)};`);
  });
  const source = parts.join('\n');
  const options: ts.CompilerOptions = {
    strict: true,
    noEmit: true,
    skipLibCheck: true,
    module: ts.ModuleKind.CommonJS,
    moduleResolution: ts.ModuleResolutionKind.Node10,
    target: ts.ScriptTarget.ES2022,
    types: [],
    baseUrl: '/',
    paths: { [`${PACKAGE}/*`]: [`${dir}/*`] },
  };
  const host = ts.createCompilerHost(options);
  const readSource = host.getSourceFile.bind(host);
  host.getSourceFile = (name, language, ...rest) => (name === file ? ts.createSourceFile(name, source, language) : readSource(name, language, ...rest));
  const exists = host.fileExists.bind(host);
  host.fileExists = (name) => name === file || exists(name);
  const program = ts.createProgram([file], options, host);
  const problems: Problem[] = [];
  for (const d of ts.getPreEmitDiagnostics(program).slice(0, ISSUES_MAX)) {
    const message = ts.flattenDiagnosticMessageText(d.messageText, '\n').split('\n')[0];
    if (!d.file || d.file.fileName !== file || d.start === undefined) {
      problems.push({ object: '(type check)', message });
      continue;
    }
    const at = d.start;
    const object = starts.filter((s) => s.offset <= at).at(-1)?.object ?? '?';
    const line = source.slice(source.lastIndexOf('\n', at) + 1, source.indexOf('\n', at) === -1 ? undefined : source.indexOf('\n', at)).trim();
    problems.push({ object, message: `${message} (at ${line})` });
  }
  return problems;
}
