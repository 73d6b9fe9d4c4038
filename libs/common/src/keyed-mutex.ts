import { Mutex } from 'async-mutex';

/**
 * Runs jobs one at a time per key (e.g. per wallet or per container), in call order; different keys
 * run concurrently. A key's mutex is dropped when its queue empties, so memory follows the keys in use.
 */
export class KeyedMutex<K = string> {
  private readonly mutexes = new Map<K, { mutex: Mutex; users: number }>();

  async run<T>(key: K, job: () => Promise<T>): Promise<T> {
    let entry = this.mutexes.get(key);
    if (!entry) {
      entry = { mutex: new Mutex(), users: 0 };
      this.mutexes.set(key, entry);
    }
    entry.users++;
    try {
      return await entry.mutex.runExclusive(job);
    } finally {
      entry.users--;
      if (entry.users === 0) this.mutexes.delete(key);
    }
  }

  /** Keys with a job running or waiting. */
  get size(): number {
    return this.mutexes.size;
  }
}
