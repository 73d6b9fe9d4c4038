import { execSync } from 'node:child_process';
import { inputBucketOf, outputBucketOf, type ServiceName } from '@mesh/contracts';
import { nanos, type NatsConnection } from 'nats';
import type { TestIdentity } from '@mesh/testing';
import { E2EStack } from '../e2e/stack';

/**
 * The trust boundary under attack: an auth-enabled nats-server (libs/identity's authorization block),
 * the five services as real processes with their own credentials, tenants created as `mesh tenant
 * create` does, and connections as anonymous / a tenant / a service / the operator. `snapshot()`
 * captures what an attack must not change: the ledger's totals (every balance summed by kind, debt,
 * flows), the audit report and the log's last sequence.
 */
export interface StateSnapshot {
  totals: unknown;
  audit: { pass: boolean; events: number; walletEvents: number; totals: unknown };
  lastSequence: bigint;
}

/** The bytes a tenant's buckets may hold in tests (the CLI's default is TENANT_BUCKET_MAX_BYTES). */
const TEST_BUCKET_MAX_BYTES = 16 * 1024 * 1024;

export class SecurityHarness {
  readonly stack = new E2EStack(20, true);
  private readonly connections: NatsConnection[] = [];

  get server() {
    return this.stack.server;
  }

  async start(tenants: readonly string[]): Promise<void> {
    execSync('docker info', { stdio: 'ignore' }); // the container-manager needs an engine: a clear failure when none answers
    await this.stack.start();
    for (const tenantId of tenants) await this.createTenant(tenantId);
  }

  /** A tenant as `mesh tenant create` makes it: credentials, reloaded server, its two buckets (created by the operator). */
  async createTenant(tenantId: string): Promise<void> {
    await this.server.createTenant(tenantId);
    const js = this.stack.store.connection.jetstream();
    for (const bucket of [inputBucketOf(tenantId), outputBucketOf(tenantId)]) {
      await js.views.os(bucket, { max_bytes: TEST_BUCKET_MAX_BYTES, ttl: nanos(3_600_000) });
    }
  }

  /** A connection as `identity`, closed by stop(). */
  async connectAs(identity: TestIdentity): Promise<NatsConnection> {
    const nc = await this.server.connectAs(identity);
    this.connections.push(nc);
    return nc;
  }

  credsPath(identity: { kind: 'service'; name: ServiceName } | { kind: 'operator' } | { kind: 'tenant'; tenantId: string }): string {
    return this.server.credsPath(identity);
  }

  async snapshot(): Promise<StateSnapshot> {
    const client = this.stack.client;
    // The ledger applies what the log holds asynchronously; the totals are read at a position that is
    // compared too, so a change anywhere shows.
    const totals = await client.requestRaw('mesh.query.ledger.totals', {});
    const audit = (await client.requestRaw('mesh.query.ledger.audit', {}, 120_000)) as StateSnapshot['audit'];
    const lastSequence = await this.stack.store.headPosition();
    return { totals, audit: { pass: audit.pass, events: audit.events, walletEvents: audit.walletEvents, totals: audit.totals }, lastSequence };
  }

  /** Runs `attack` and asserts afterwards: no new event in MESH_EVENTS, balances and audit unchanged. */
  async expectNoEffect(attack: () => Promise<void>): Promise<void> {
    const before = await this.snapshot();
    await attack();
    // Whatever the attack published has reached the server before we look (a flush is a round trip).
    for (const nc of this.connections) if (!nc.isClosed()) await nc.flush().catch(() => undefined);
    const after = await this.snapshot();
    expect(after.lastSequence).toBe(before.lastSequence);
    expect(after.totals).toEqual(before.totals);
    expect(after.audit).toEqual(before.audit);
    expect(after.audit.pass).toBe(true);
  }

  /** nats-server's permission-violation lines so far (it logs every refused publish and subscribe). */
  violations(): string[] {
    return this.server.logs.split('\n').filter((l) => /Violation/.test(l));
  }

  async stop(): Promise<void> {
    for (const nc of this.connections) await nc.close().catch(() => undefined);
    await this.stack.stop();
  }
}
