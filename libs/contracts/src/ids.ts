import { z } from 'zod';
import { ContractError } from './errors';

/** Ids are [A-Za-z0-9_-]{1,128}. They are also NATS-subject-token safe (no '.', '*', '>'). */
export const ID_PATTERN = /^[A-Za-z0-9_-]{1,128}$/;
export const ID_MAX_LENGTH = 128;

export const idSchema = z.string({ error: 'must be a string' }).regex(ID_PATTERN, { error: 'must match [A-Za-z0-9_-]{1,128}' });

export function assertId(value: unknown, field: string): string {
  if (typeof value !== 'string' || !ID_PATTERN.test(value)) {
    throw ContractError.single('id', field, 'must match [A-Za-z0-9_-]{1,128}');
  }
  return value;
}

/**
 * Every stream category and its single writer service (docs/architecture.md). The eventstore refuses a
 * stream whose category is not listed here, so a typo can't silently create a new category.
 */
export const CATEGORY_OWNERS = {
  function: 'scheduler',
  task: 'scheduler',
  node: 'container-manager',
  container: 'container-manager',
  execution: 'container-manager',
  usage: 'container-manager',
  scaling: 'scaler',
  meter: 'credit-manager',
  standing: 'credit-manager',
  wallet: 'ledger',
  /** Dead letters, one stream per consuming service (`deadletter-<service>`), written by that service. */
  deadletter: '*',
  /** Reserved for the event store's own contract tests. */
  test: '*',
} as const;
export type Category = keyof typeof CATEGORY_OWNERS;
export const CATEGORIES = Object.keys(CATEGORY_OWNERS) as Category[];

const CATEGORY_PATTERN = /^[a-z]{1,32}$/;

export interface StreamName {
  category: Category;
  id: string;
}

/** `wallet-alice` -> { category: 'wallet', id: 'alice' }. The category never contains '-'. */
export function parseStreamName(stream: string): StreamName {
  const dash = stream.indexOf('-');
  const category = dash > 0 ? stream.slice(0, dash) : '';
  const id = dash > 0 ? stream.slice(dash + 1) : '';
  if (!CATEGORY_PATTERN.test(category) || !(category in CATEGORY_OWNERS)) {
    throw ContractError.single('stream', 'stream', `must be <category>-<id> with category one of ${CATEGORIES.join('|')}`);
  }
  if (!ID_PATTERN.test(id)) {
    throw ContractError.single('stream', 'stream', 'id part must match [A-Za-z0-9_-]{1,128}');
  }
  return { category: category as Category, id };
}

export function streamName(category: Category, id: string): string {
  assertId(id, `${category}.id`);
  return `${category}-${id}`;
}

export const SERVICES = ['scheduler', 'container-manager', 'credit-manager', 'scaler', 'ledger'] as const;
export type ServiceName = (typeof SERVICES)[number];
