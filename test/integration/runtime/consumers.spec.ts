import { Controller, Module, type DynamicModule } from '@nestjs/common';
import { DeliverPolicy } from 'nats';
import { EVENTS_STREAM, type RecordedEvent } from '@mesh/contracts';
import { commonEnv, loadConfig } from '@mesh/config';
import { JetStreamEventStore } from '@mesh/eventstore';
import { MeshCoreModule, OnEvents, durableConsumersOf, startService, type MeshCore, type RunningService, type ServiceDefinition } from '@mesh/runtime';
import { NatsServerProcess, eventually } from '@mesh/testing';
import { LedgerService } from '../../../apps/ledger/src/main';

const seen: string[] = [];

@Controller()
class FeedController {
  @OnEvents('test', { maxAckPending: 8 })
  onTest(event: RecordedEvent): void {
    seen.push(event.id);
  }
}

@Module({ controllers: [FeedController] })
class FeedModule {}

@Module({})
class ProbeModule {
  static forRoot(core: MeshCore): DynamicModule {
    return { module: ProbeModule, imports: [MeshCoreModule.forRoot(core), FeedModule] };
  }
}

const probe: ServiceDefinition<Record<string, never>> = { service: 'scaler', env: {}, module: (core) => ProbeModule.forRoot(core) };

/**
 * durableConsumersOf: the durable consumers a service creates, from its module's controllers (imported
 * modules included) and the runtime's one config function, so that a tool (the restart bench) can
 * create them beforehand; and a service takes over such a consumer where it stands.
 */
describe('durable consumers of a service', () => {
  let server: NatsServerProcess;
  let service: RunningService | undefined;

  beforeAll(async () => {
    server = await NatsServerProcess.start();
  });
  afterAll(async () => {
    await service?.stop();
    await server?.dispose();
  });

  it('lists the ledger consumers the way its transport names them', () => {
    const config = loadConfig({ ...commonEnv, ...LedgerService.env }, {});
    const consumers = durableConsumersOf(LedgerService, { service: 'ledger', nc: undefined as never, store: undefined as never, config });
    const byName = new Map(consumers.map((c) => [c.config.durable_name, c.config]));
    expect(byName.get('ledger_meter')).toMatchObject({ filter_subject: 'mesh.events.meter.*', deliver_policy: DeliverPolicy.All, max_deliver: 101 });
    expect(byName.get('ledger_wallet_tenantfeed')).toMatchObject({ filter_subject: 'mesh.events.wallet.*', deliver_policy: DeliverPolicy.New });
    expect(consumers).toHaveLength(10);
  });

  it('a consumer created beforehand at the log head with the same config is taken over there: the service sees only later events', async () => {
    // Given events in the log, and the service's consumer created at the head with the runtime's config
    const nc = await server.connect('consumers-spec');
    const store = await JetStreamEventStore.connect(nc);
    try {
      for (const id of ['old-1', 'old-2']) await store.append(`test-${id}`, [{ id, type: 'TestEvent', data: { n: 1 } }], 'any');
      const env = { NATS_URL: server.url, LOG_LEVEL: 'error' };
      const config = loadConfig({ ...commonEnv, ...probe.env }, env);
      const consumers = durableConsumersOf(probe, { service: 'scaler', nc, store, config });
      expect(consumers.map((c) => c.config.durable_name)).toEqual(['scaler_test']);
      const jsm = await nc.jetstreamManager();
      const head = await store.headPosition();
      for (const { config: c } of consumers)
        await jsm.consumers.add(EVENTS_STREAM, { ...c, deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: Number(head) + 1 });
      // When the service starts (its own add finds the consumer) and an event follows
      service = await startService(probe, env);
      await store.append('test-new', [{ id: 'new-1', type: 'TestEvent', data: { n: 2 } }], 'any');
      // Then it handles only the new event, on a consumer whose settings are the runtime's
      await eventually(() => seen.includes('new-1'), 15_000, 'new-1 handled');
      expect(seen).toEqual(['new-1']);
      const info = await jsm.consumers.info(EVENTS_STREAM, 'scaler_test');
      const { deliver_policy: _policy, ...expected } = consumers[0].config;
      expect(info.config).toMatchObject(expected);
    } finally {
      await store.close();
      await nc.close();
    }
  });
});
