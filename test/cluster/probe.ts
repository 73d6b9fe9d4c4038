import { setTimeout as sleep } from 'node:timers/promises';
import { messageOf } from '@mesh/common';
import type { EventStore } from '@mesh/eventstore';

/** Events one probe appends at most (bounds a run that is never stopped). */
const PROBE_EVENTS_MAX = 100_000;
/** Pause after a failed append before the same event is tried again (the dedup window makes the retry safe). */
const RETRY_PAUSE_MS = 50;
/** An append not answered by then counts as failed and is tried again (same id): a writer must not wait forever on one. */
const APPEND_TIMEOUT_MS = 10_000;

export interface ProbeReport {
  /** Events the store acknowledged (the append resolved), in order. */
  acked: string[];
  /** Appends that failed (timeout, no responders, leader gone) and were tried again. */
  errors: number;
  /** The longest time between two acknowledged appends, and when the gap ended (ms since the epoch). */
  longestGapMs: number;
  longestGapEndedAtMs: number;
  /** The first error messages (bounded), to say what a leader change looks like to a writer. */
  errorExamples: string[];
}

/**
 * Appends one event after another to a `test-` stream while something breaks NATS, and records what
 * was acknowledged: the proof of "no acknowledged event is missing" reads these back afterwards.
 * A failed append is retried with the same event id: JetStream's duplicate window (Nats-Msg-Id) turns
 * a retry of a write that did land into the original sequence, so the log holds each event once.
 */
export class AppendProbe {
  private stopped = false;
  private loop?: Promise<void>;
  private readonly report: ProbeReport = { acked: [], errors: 0, longestGapMs: 0, longestGapEndedAtMs: 0, errorExamples: [] };

  constructor(
    private readonly store: EventStore,
    readonly stream: string,
    private readonly intervalMs = 10,
  ) {}

  start(): this {
    this.loop = this.run();
    return this;
  }

  get ackedCount(): number {
    return this.report.acked.length;
  }

  /** So far: acknowledged, failed, and the first errors (for a timeout message). */
  get progress(): string {
    return `${this.report.acked.length} acked, ${this.report.errors} failed (${this.report.errorExamples.join(' | ')})`;
  }

  private async run(): Promise<void> {
    let lastAckMs = Date.now();
    for (let n = 0; n < PROBE_EVENTS_MAX && !this.stopped; n++) {
      // Event ids are unique in the whole log (the dedup window is per stream of JetStream, not per mesh stream).
      const id = `${this.stream}-${n}`;
      for (;;) {
        try {
          const timer = new AbortController();
          await Promise.race([
            this.store.append(this.stream, [{ id, type: 'TestEvent', data: { n } }], 'any'),
            sleep(APPEND_TIMEOUT_MS, undefined, { signal: timer.signal }).then(
              () => Promise.reject(new Error(`append of ${id} not answered within ${APPEND_TIMEOUT_MS} ms`)),
              () => undefined,
            ),
          ]).finally(() => timer.abort());
          break;
        } catch (err) {
          this.report.errors++;
          if (this.report.errorExamples.length < 5) this.report.errorExamples.push(messageOf(err));
          // Stopped while the cluster still refuses: this one stays unacknowledged (it may or may not be in the log).
          if (this.stopped) return;
          await sleep(RETRY_PAUSE_MS);
        }
      }
      const now = Date.now();
      this.report.acked.push(id);
      if (now - lastAckMs > this.report.longestGapMs) {
        this.report.longestGapMs = now - lastAckMs;
        this.report.longestGapEndedAtMs = now;
      }
      lastAckMs = now;
      await sleep(this.intervalMs);
    }
  }

  async stop(): Promise<ProbeReport> {
    this.stopped = true;
    await this.loop;
    return this.report;
  }
}
