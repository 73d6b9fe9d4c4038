import { z } from 'zod';
import { catalog } from './catalog';
import { compileCheck, passesSchema } from './validate';

/**
 * compileCheck must never pass what zod refuses (a read would then accept poison), and should pass
 * what zod passes (else every valid event pays for zod). Checked against zod itself: hand-picked
 * schemas for each construct, and every event type of the catalog with a valid sample mutated at
 * every field.
 */

/** Values that break one rule or another of most leaves. */
const ODD_VALUES: unknown[] = [
  undefined,
  null,
  '',
  'a',
  'abc',
  'A'.repeat(129),
  '\u{1F600}\u{1F600}',
  '\u{1F600}ab',
  'ab\u{1F600}',
  '0.5',
  '-1',
  '1/3',
  '0'.repeat(64),
  'g'.repeat(64),
  -1,
  0,
  1,
  1.5,
  2 ** 53,
  -(2 ** 53),
  Number.NaN,
  Number.POSITIVE_INFINITY,
  true,
  false,
  {},
  [],
  ['a'],
  [{}],
];

function agree(schema: z.ZodType, value: unknown): { fast: boolean; zod: boolean } {
  const check = compileCheck(schema);
  if (!check) throw new Error('schema not compiled');
  return { fast: check(value), zod: schema.safeParse(value).success };
}

describe('compileCheck against zod', () => {
  const schemas: Record<string, z.ZodType> = {
    'string bounds and regex': z
      .string()
      .min(3)
      .max(8)
      .regex(/^[a-z\u{1F600}]*$/u),
    'string min in code points': z.string().min(3),
    'string max in code points': z.string().max(3),
    'int bounds': z.int().min(0).max(9),
    'number exclusive bounds': z.number().gt(-1).lt(2),
    'number int check': z.number().int(),
    boolean: z.boolean(),
    enum: z.enum(['user', 'provider']),
    'big enum': z.enum(['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j']),
    literal: z.literal('x'),
    'optional and nullable': z.object({ a: z.string().optional(), b: z.int().nullable() }),
    'required key': z.object({ a: z.unknown() }),
    union: z.union([z.object({ kind: z.literal('one'), n: z.int() }), z.object({ kind: z.literal('two'), s: z.string() })]),
    'array bounds': z
      .array(z.object({ id: z.string().min(1) }))
      .min(1)
      .max(2),
    strict: z.strictObject({ a: z.string() }),
    loose: z.looseObject({ a: z.string() }),
  };
  const objectValues: unknown[] = [
    { a: 'x', b: 1 },
    { a: 'x', b: null },
    { b: 1 },
    { a: undefined, b: 1 },
    { a: 1, b: 1 },
    { a: 'x' },
    { a: 'x', b: 1, extra: true },
    { kind: 'one', n: 1 },
    { kind: 'two', s: 's' },
    { kind: 'two', n: 1 },
    { kind: 'three' },
    [{ id: 'a' }],
    [{ id: 'a' }, { id: 'b' }],
    [{ id: 'a' }, { id: 'b' }, { id: 'c' }],
    [{ id: '' }],
    [{ id: 'a', other: 1 }],
  ];

  it.each(Object.entries(schemas))('%s: passes exactly what zod passes', (_name, schema) => {
    for (const value of [...ODD_VALUES, ...objectValues]) {
      const { fast, zod } = agree(schema, value);
      expect({ value, fast }).toEqual({ value, fast: zod });
    }
  });

  it('leaves to zod what it does not cover (refinements, transforms, defaults, records)', () => {
    expect(compileCheck(z.string().refine((s) => s.length > 1))).toBeUndefined();
    expect(compileCheck(z.string().transform((s) => s.length))).toBeUndefined();
    expect(compileCheck(z.object({ a: z.string().default('x') }))).toBeUndefined();
    expect(compileCheck(z.record(z.string(), z.string()))).toBeUndefined();
    expect(compileCheck(z.email())).toBeUndefined();
    expect(
      passesSchema(
        z.string().refine((s) => s.length > 1),
        'a',
      ),
    ).toBe(false);
    expect(
      passesSchema(
        z.string().refine((s) => s.length > 1),
        'ab',
      ),
    ).toBe(true);
  });
});

describe('compileCheck over the catalog', () => {
  /** Strings a leaf of the catalog accepts: the first one its schema passes is its sample. */
  const STRING_CANDIDATES = ['a', 'GRC', '0.5', '1/3', '1', '0'.repeat(64), '2026-11-30T00:00:00.000Z', 'abc-1', 'a'.repeat(10)];
  const NUMBER_CANDIDATES = [1, 0, 5, 1000];

  type Def = { type: string; shape?: Record<string, z.ZodType>; innerType?: z.ZodType; options?: z.ZodType[]; element?: z.ZodType };
  const defOf = (s: z.ZodType) => (s as unknown as { _zod: { def: Def; values?: Set<unknown> } })._zod;

  /** A value the schema passes (checked by zod), with every optional member present. */
  function sample(schema: z.ZodType): unknown {
    const { def, values } = defOf(schema);
    const pick = (candidates: unknown[]) => {
      const found = candidates.find((c) => schema.safeParse(c).success);
      if (found === undefined) throw new Error(`no sample for a ${def.type}`);
      return found;
    };
    switch (def.type) {
      case 'object':
        return Object.fromEntries(Object.entries(def.shape ?? {}).map(([k, v]) => [k, sample(v)]));
      case 'optional':
      case 'nullable':
        return sample(def.innerType!);
      case 'union':
        return sample(def.options![0]);
      case 'array':
        return [sample(def.element!)];
      case 'enum':
      case 'literal':
        return [...values!][0];
      case 'string':
        return pick(STRING_CANDIDATES);
      case 'number':
        return pick(NUMBER_CANDIDATES);
      case 'boolean':
        return true;
      default:
        return 'x';
    }
  }

  /** Every path to a member of `value` (objects and arrays), for mutation. */
  function paths(value: unknown, prefix: (string | number)[] = []): (string | number)[][] {
    if (Array.isArray(value)) return value.flatMap((v, i) => [[...prefix, i], ...paths(v, [...prefix, i])]);
    if (typeof value === 'object' && value !== null) return Object.entries(value).flatMap(([k, v]) => [[...prefix, k], ...paths(v, [...prefix, k])]);
    return [];
  }

  function mutated(value: unknown, path: (string | number)[], replacement: unknown): unknown {
    const copy = structuredClone(value) as Record<string | number, unknown>;
    let at = copy;
    for (const step of path.slice(0, -1)) at = at[step] as Record<string | number, unknown>;
    const last = path[path.length - 1];
    if (replacement === undefined && !Array.isArray(at)) delete at[last];
    else at[last] = replacement;
    return copy;
  }

  const compiled = catalog.all().filter((d) => compileCheck(d.schema) !== undefined);

  it('compiles the event types of the hot paths (the ledger, the meter)', () => {
    const names = compiled.map((d) => d.type);
    for (const type of ['UsageCharged', 'UsageDebited', 'UsageCredited', 'WalletOpened', 'FundsDeposited', 'MessageQuarantined']) expect(names).toContain(type);
  });

  it.each(compiled.map((d) => [d.type, d] as const))('%s: agrees with zod on a valid sample and every field mutated', (_type, definition) => {
    const valid = sample(definition.schema);
    expect(agree(definition.schema, valid)).toEqual({ fast: true, zod: true });
    let cases = 0;
    for (const path of paths(valid)) {
      for (const odd of ODD_VALUES) {
        const value = mutated(valid, path, odd);
        const { fast, zod } = agree(definition.schema, value);
        expect({ path, odd, fast }).toEqual({ path, odd, fast: zod });
        cases++;
      }
    }
    expect(agree(definition.schema, { ...(valid as object), notInTheSchema: 1 }).fast).toBe(
      definition.schema.safeParse({ ...(valid as object), notInTheSchema: 1 }).success,
    );
    expect(cases).toBeGreaterThan(0);
  });
});
