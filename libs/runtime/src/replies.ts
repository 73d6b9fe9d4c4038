import { RetriesExhaustedError } from '@mesh/common';
import { ContractError, DomainError, type ContractIssue } from '@mesh/contracts';
import { ConcurrencyError } from '@mesh/eventstore/errors';

/** Every reply on a request subject: `{ ok: true, data }` or `{ ok: false, error }`. */
export type Reply<T> = { ok: true; data: T } | { ok: false; error: ErrorBody };

export interface ErrorBody {
  code: string;
  message: string;
  issues?: ContractIssue[];
}

export function toErrorBody(err: unknown): ErrorBody {
  // Retries that ran out answer with what made them fail the last time (e.g. the conflict).
  if (err instanceof RetriesExhaustedError && err.cause !== undefined) return toErrorBody(err.cause);
  if (err instanceof ContractError) return { code: err.code, message: err.message, issues: err.issues };
  if (err instanceof DomainError) return { code: err.code, message: err.message };
  if (err instanceof ConcurrencyError) return { code: err.code, message: err.message };
  if (err instanceof SyntaxError) return { code: 'invalid_json', message: `request body is not JSON: ${err.message}` };
  const e = err as { code?: unknown; message?: unknown };
  return { code: typeof e?.code === 'string' ? e.code : 'internal', message: typeof e?.message === 'string' ? e.message : String(err) };
}

/** A request answered with `ok: false`, thrown by MeshClient. */
export class RequestError extends Error {
  constructor(
    readonly subject: string,
    readonly code: string,
    message: string,
    readonly issues?: ContractIssue[],
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'RequestError';
  }
}
