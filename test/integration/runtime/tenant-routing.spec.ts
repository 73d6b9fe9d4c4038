import type { NatsConnection } from 'nats';
import { Controller, Module, type DynamicModule } from '@nestjs/common';
import { Ctx, Payload } from '@nestjs/microservices';
import { z } from 'zod';
import { defineRequest, tenantSubject, type Caller } from '@mesh/contracts';
import { NatsServerProcess } from '@mesh/testing';
import { MeshClient, MeshCoreModule, OnRequest, startService, type MeshCore, type NatsRequestContext, type RunningService } from '@mesh/runtime';

/**
 * The transport's tenant routing (libs/runtime/src/transport.ts) on a real nats-server (no NATS auth: what the permissions would
 * refuse is not tested here, only what the services answer): a request with `access: 'tenant'` is
 * answered on its operator subject and on every tenant's copy, with the caller taken from the
 * subject; an operator-only one is not answered on a tenant subject at all.
 */
const callerSchema = z.object({ kind: z.enum(['operator', 'tenant']), tenantId: z.string().optional() });
const whoami = defineRequest(
  'query',
  'mesh.query.scaler.test-whoami',
  z.object({ note: z.string() }),
  z.object({ caller: callerSchema, note: z.string() }),
  'the caller',
  {
    access: 'tenant',
  },
);
const secret = defineRequest('query', 'mesh.query.scaler.test-secret', z.object({}), z.object({ caller: callerSchema }), 'operator only');

@Controller()
class CallerController {
  @OnRequest(whoami)
  whoami(@Payload() body: { note: string }, @Ctx() ctx: NatsRequestContext): { caller: Caller; note: string } {
    return { caller: ctx.caller, note: body.note };
  }

  @OnRequest(secret)
  secret(@Payload() _body: unknown, @Ctx() ctx: NatsRequestContext): { caller: Caller } {
    return { caller: ctx.caller };
  }
}

@Module({})
class CallerModule {
  static forRoot(core: MeshCore): DynamicModule {
    return { module: CallerModule, imports: [MeshCoreModule.forRoot(core)], controllers: [CallerController] };
  }
}

describe('transport: tenant routing', () => {
  let server: NatsServerProcess;
  let service: RunningService;
  let operator: MeshClient;
  let alice: MeshClient;
  let bob: MeshClient;
  let nc: NatsConnection | undefined;

  beforeAll(async () => {
    server = await NatsServerProcess.start();
    service = await startService({ service: 'scaler', env: {}, module: (core) => CallerModule.forRoot(core) }, { NATS_URL: server.url, LOG_LEVEL: 'error' });
    await service.nc.flush();
    nc = await server.connect('tenant-routing-test');
    operator = new MeshClient(nc);
    alice = new MeshClient(nc, 5000, 'alice');
    bob = new MeshClient(nc, 5000, 'bob');
  });
  afterAll(async () => {
    await nc?.close();
    await service?.stop();
    await server?.dispose();
  });

  it("answers a tenant request on mesh.tenant.alice.* with the caller tenant alice (the body's own claims change nothing)", async () => {
    expect(alice.subjectFor(whoami)).toBe('mesh.tenant.alice.query.scaler.test-whoami');
    expect(await alice.request(whoami, { note: 'I am the operator' })).toEqual({ caller: { kind: 'tenant', tenantId: 'alice' }, note: 'I am the operator' });
    expect(await bob.requestRaw(tenantSubject('bob', whoami.subject), { note: 'x' })).toEqual({ caller: { kind: 'tenant', tenantId: 'bob' }, note: 'x' });
  });

  it('answers the same request on its operator subject with the caller operator', async () => {
    expect(await operator.request(whoami, { note: 'op' })).toEqual({ caller: { kind: 'operator' }, note: 'op' });
  });

  it('does not answer an operator-only request on a tenant subject (no responders), only on its own', async () => {
    await expect(alice.request(secret, {})).rejects.toMatchObject({ code: 'no_responders', subject: 'mesh.tenant.alice.query.scaler.test-secret' });
    expect(await operator.request(secret, {})).toEqual({ caller: { kind: 'operator' } });
  });
});
