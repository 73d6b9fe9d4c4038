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
