export * from './errors';
export * from './retry';
export * from './keyed-mutex';
export { LRUCache } from 'lru-cache';
