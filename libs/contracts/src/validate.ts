import { z } from 'zod';
import { ContractError } from './errors';

/** Parses `value` with `schema`; on failure throws a ContractError naming each field and rule. */
export function parseOrThrow<S extends z.ZodType>(schema: S, value: unknown, where: string): z.output<S> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  throw new ContractError(
    where,
    result.error.issues.map((issue) => ({
      field: issue.path.map(String).join('.'),
      rule: issue.message,
    })),
  );
}

/**
 * Whether `value` passes `schema`, for hot read paths (every event read is checked against its
 * type's schema). A predicate compiled once per schema from its definition answers in a fraction of
 * zod's time (no issue objects, no output copy); it only ever says yes when zod would, so a `false`
 * (or a schema using a feature it does not cover) is decided by zod's own safeParse, which also
 * gives the message. Callers that need the parsed output or the issues use parseOrThrow/safeParse.
 */
export function passesSchema(schema: z.ZodType, value: unknown): boolean {
  let check = compiled.get(schema);
  if (check === undefined) {
    check = compileCheck(schema) ?? null;
    compiled.set(schema, check);
  }
  if (check !== null && check(value)) return true;
  return schema.safeParse(value).success;
}

type Check = (value: unknown) => boolean;

/** Compiled predicates by schema (null: the schema uses a feature compileCheck does not cover). */
const compiled = new WeakMap<z.ZodType, Check | null>();

/** What compileCheck reads of a zod 4 schema: its definition (public as `_zod.def`) and, for enums and literals, its value set. */
interface ZodInternals {
  _zod: { def: ZodDef; values?: ReadonlySet<unknown>; traits?: ReadonlySet<string> };
}
interface ZodDef {
  type: string;
  /** Set on schemas that are a check themselves (e.g. z.int() is a number with a `number_format` check). */
  check?: string;
  format?: string;
  coerce?: boolean;
  checks?: ReadonlyArray<{ _zod: { def: CheckDef } }>;
  shape?: Record<string, z.ZodType>;
  catchall?: z.ZodType;
  innerType?: z.ZodType;
  options?: readonly z.ZodType[];
  element?: z.ZodType;
}
interface CheckDef {
  check: string;
  format?: string;
  pattern?: RegExp;
  minimum?: number;
  maximum?: number;
  value?: unknown;
  inclusive?: boolean;
}

/** Unicode code points of `s` (zod measures string lengths in code points, not UTF-16 units). */
function codePoints(s: string): number {
  let count = s.length;
  for (let i = 0; i < s.length - 1; i++) {
    if ((s.charCodeAt(i) & 0xfc00) === 0xd800 && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      count--;
      i++;
    }
  }
  return count;
}

/**
 * A predicate equivalent to `schema.safeParse(v).success`, built from the zod 4
 * definition, or undefined when the schema uses anything beyond what is covered here (the caller then
 * uses zod). Covered: object (stripped, strict or kept unknown keys), string (min/max length in code
 * points, regex), number (finite; safe integers; inclusive or exclusive bounds), boolean, enum,
 * literal, optional, nullable, union, array (min/max length), unknown/any. Not covered (zod decides):
 * coercion, transforms, defaults, refinements, records, other string formats. The equivalence is
 * checked against zod in validate.spec.ts.
 *
 * Generated as one JavaScript function per object or array (as zod does for its own object fast
 * path): fixed property reads and inlined leaf tests, about ten times cheaper than closures per field
 * over a keyed loop. The source holds no input: keys are JSON literals, regexes and sets constants.
 */
export function compileCheck(schema: z.ZodType): Check | undefined {
  const gen = new CheckSource();
  const root = gen.fn(schema);
  if (root === undefined) return undefined;
  // eslint-disable-next-line @typescript-eslint/no-implied-eval -- generated from our own schema definitions, see above
  const build = new Function('k', 'cp', `'use strict';\n${gen.functions.join('\n')}\nreturn ${root};`) as (k: unknown[], cp: (s: string) => number) => Check;
  return build(gen.constants, codePoints);
}

/** The source of one schema's predicate: functions `f0..fn` (objects and arrays) over constants `k`. */
class CheckSource {
  readonly constants: unknown[] = [];
  readonly functions: string[] = [];

  constant(value: unknown): string {
    this.constants.push(value);
    return `k[${this.constants.length - 1}]`;
  }

  /** A function name whose function tests `v` against `schema`. */
  fn(schema: z.ZodType): string | undefined {
    const name = `f${this.functions.length}`;
    this.functions.push(''); // reserved: nested functions get the next names
    const test = this.expr(schema, 'v');
    if (test === undefined) return undefined;
    this.functions[Number(name.slice(1))] = `function ${name}(v) { return ${test}; }`;
    return name;
  }

  /** A boolean expression testing the variable `x` against `schema`, or undefined when not covered. */
  expr(schema: z.ZodType, x: string): string | undefined {
    const internals = (schema as unknown as ZodInternals)._zod;
    const def = internals.def;
    if (def.coerce) return undefined;
    switch (def.type) {
      case 'string':
        return def.check === undefined ? this.withChecks(def, `typeof ${x} === 'string'`, x) : undefined;
      case 'number':
        if (def.check === undefined) return this.withChecks(def, `(typeof ${x} === 'number' && Number.isFinite(${x}))`, x);
        return def.check === 'number_format' && def.format === 'safeint' ? this.withChecks(def, `Number.isSafeInteger(${x})`, x) : undefined;
      case 'boolean':
        return this.withChecks(def, `typeof ${x} === 'boolean'`, x);
      case 'enum':
      case 'literal':
        return internals.values ? this.withChecks(def, this.oneOf(internals.values, x), x) : undefined;
      case 'unknown':
      case 'any':
        return this.withChecks(def, 'true', x);
      case 'optional': {
        // z.exactOptional() shares the type but refuses a present `undefined`: zod decides it.
        if (internals.traits?.has('$ZodExactOptional') || !def.innerType) return undefined;
        const inner = this.expr(def.innerType, x);
        return inner && this.withChecks(def, `(${x} === undefined || ${inner})`, x);
      }
      case 'nullable': {
        const inner = def.innerType && this.expr(def.innerType, x);
        return inner && this.withChecks(def, `(${x} === null || ${inner})`, x);
      }
      case 'union': {
        const options = (def.options ?? []).map((o) => this.expr(o, x));
        if (options.length === 0 || options.some((o) => o === undefined)) return undefined;
        return this.withChecks(def, `(${options.join(' || ')})`, x);
      }
      case 'array': {
        const name = `f${this.functions.length}`;
        this.functions.push('');
        const element = def.element && this.expr(def.element, 'e');
        if (!element) return undefined;
        this.functions[Number(name.slice(1))] =
          `function ${name}(v) { if (!Array.isArray(v)) return false; for (let i = 0; i < v.length; i++) { const e = v[i]; if (!(${element})) return false; } return true; }`;
        return this.withChecks(def, `${name}(${x})`, x);
      }
      case 'object': {
        const name = this.object(def);
        return name && this.withChecks(def, `${name}(${x})`, x);
      }
      default:
        return undefined;
    }
  }

  private object(def: ZodDef): string | undefined {
    const shape = def.shape ?? {};
    const keys = Object.keys(shape);
    if (keys.includes('__proto__') || Object.getOwnPropertySymbols(shape).length > 0) return undefined;
    const catchall = def.catchall ? (def.catchall as unknown as ZodInternals)._zod.def.type : undefined;
    // No catchall: unknown keys are stripped (they pass); `never`: strict; `unknown`: kept as they are.
    if (catchall !== undefined && catchall !== 'never' && catchall !== 'unknown') return undefined;
    const name = `f${this.functions.length}`;
    this.functions.push('');
    const lines = [`if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;`];
    for (let i = 0; i < keys.length; i++) {
      const field = shape[keys[i]];
      const key = JSON.stringify(keys[i]);
      const test = this.expr(field, `p${i}`);
      if (test === undefined) return undefined;
      lines.push(`const p${i} = v[${key}];`);
      // Only `.optional()` may be absent here; zod lets a few more (defaults) be absent, which zod then decides.
      if ((field as unknown as ZodInternals)._zod.def.type !== 'optional') lines.push(`if (p${i} === undefined && !(${key} in v)) return false;`);
      lines.push(`if (!(${test})) return false;`);
    }
    if (catchall === 'never') lines.push(`for (const key in v) if (!${this.constant(new Set(keys))}.has(key)) return false;`);
    lines.push('return true;');
    this.functions[Number(name.slice(1))] = `function ${name}(v) {\n  ${lines.join('\n  ')}\n}`;
    return name;
  }

  /** `x` is one of `values`: a chain of === for a few primitives, else a Set lookup. */
  private oneOf(values: ReadonlySet<unknown>, x: string): string {
    const list = [...values];
    const literal = (v: unknown) =>
      typeof v === 'string' || typeof v === 'boolean' || v === null || (typeof v === 'number' && Number.isFinite(v)) ? JSON.stringify(v) : undefined;
    if (list.length > 0 && list.length <= 8 && list.every((v) => literal(v) !== undefined))
      return `(${list.map((v) => `${x} === ${literal(v)}`).join(' || ')})`;
    return `${this.constant(values)}.has(${x})`;
  }

  /** `base` and then the schema's own checks (length bounds, regex, numeric bounds); undefined for a check not covered. */
  private withChecks(def: ZodDef, base: string, x: string): string | undefined {
    const tests = [base];
    for (const { _zod } of def.checks ?? []) {
      const test = this.leaf(_zod.def, x);
      if (test === undefined) return undefined;
      tests.push(test);
    }
    return tests.length === 1 ? base : `(${tests.join(' && ')})`;
  }

  private leaf(c: CheckDef, x: string): string | undefined {
    const bound = (v: unknown) => (typeof v === 'number' && !Number.isNaN(v) ? String(v) : undefined);
    switch (c.check) {
      case 'min_length': {
        const min = bound(c.minimum);
        // A string of `min` to 2*min - 1 units may hold fewer code points (surrogate pairs): counted.
        return min && `(${x}.length >= ${min} && (typeof ${x} !== 'string' || ${x}.length >= 2 * ${min} || cp(${x}) >= ${min}))`;
      }
      case 'max_length': {
        const max = bound(c.maximum);
        // Within `max` units is within `max` code points; a longer string may still be short enough in code points.
        return max && `(${x}.length <= ${max} || (typeof ${x} === 'string' && cp(${x}) <= ${max}))`;
      }
      case 'string_format': {
        const pattern = c.format === 'regex' ? c.pattern : undefined;
        if (!pattern || pattern.global || pattern.sticky) return undefined;
        return `${this.constant(pattern)}.test(${x})`;
      }
      case 'number_format':
        // `.int()` on a number (z.int() is the schema form, handled above)
        return c.format === 'safeint' ? `Number.isSafeInteger(${x})` : undefined;
      case 'greater_than': {
        const b = bound(c.value);
        return b && `${x} ${c.inclusive ? '>=' : '>'} ${b}`;
      }
      case 'less_than': {
        const b = bound(c.value);
        return b && `${x} ${c.inclusive ? '<=' : '<'} ${b}`;
      }
      default:
        return undefined;
    }
  }
}
