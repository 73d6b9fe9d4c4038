import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Controller, Module, type DynamicModule } from '@nestjs/common';
import { z } from 'zod';
import { defineRequest, openWalletRequest } from '@mesh/contracts';
import { MeshClient, MeshCoreModule, OnRequest, startService, tracingEnabled, type MeshCore } from '@mesh/runtime';
import { NatsServerProcess } from '@mesh/testing';
import { ServiceProcess } from '@mesh/testing/service-process';

const ping = defineRequest('command', 'mesh.api.scaler.test-otlp-ping', z.object({}), z.object({ pong: z.boolean() }), 'answers');

@Controller()
class PingController {
  @OnRequest(ping)
  ping() {
    return { pong: true };
  }
}

@Module({})
class PingModule {
  static forRoot(core: MeshCore): DynamicModule {
    return { module: PingModule, imports: [MeshCoreModule.forRoot(core)], controllers: [PingController] };
  }
}

/**
 * OTEL_TRACES_EXPORTER=otlp as an operator sets it: the service exports its spans over OTLP/HTTP to
 * OTEL_EXPORTER_OTLP_ENDPOINT (here a local HTTP server standing in for the collector), and
 * flushes them when it stops. With the default (none) the SDK does not start at all.
 */
describe('OpenTelemetry export over OTLP/HTTP', () => {
  let server: NatsServerProcess;
  let collector: Server;
  const received: { url: string; body: string }[] = [];

  beforeAll(async () => {
    server = await NatsServerProcess.start();
    collector = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        received.push({ url: req.url ?? '', body: Buffer.concat(chunks).toString('utf8') });
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      });
    });
    await new Promise<void>((resolve) => collector.listen(0, '127.0.0.1', resolve));
  });
  afterAll(async () => {
    await new Promise((resolve) => collector?.close(resolve));
    await server?.dispose();
  });

  it('starts no SDK by default', async () => {
    const service = await startService(
      { service: 'scaler', env: {}, module: (core) => PingModule.forRoot(core) },
      { NATS_URL: server.url, LOG_LEVEL: 'error' },
    );
    try {
      expect(tracingEnabled()).toBe(false);
    } finally {
      await service.stop();
    }
  });

  it('exports the spans of a service process to the collector, flushed when it stops', async () => {
    // A real service process: the exporter is what an operator runs (plain Node, not Jest's VM).
    const ledger = ServiceProcess.start('ledger', {
      NATS_URL: server.url,
      LEDGER_HTTP_PORT: '0',
      LOG_LEVEL: 'warn',
      OTEL_TRACES_EXPORTER: 'otlp',
      OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${(collector.address() as AddressInfo).port}`,
    });
    const nc = await server.connect('otlp-test');
    try {
      await ledger.healthy(server.url);
      expect(await new MeshClient(nc).request(openWalletRequest, { walletId: 'otlp' })).toMatchObject({ walletId: 'otlp' });
      expect(await ledger.stop()).toBe(0); // SIGTERM: the service flushes its spans before it exits
      const traces = received.filter((r) => r.url === '/v1/traces');
      expect(traces.length).toBeGreaterThan(0);
      const body = traces.map((t) => t.body).join('\n');
      expect(body).toContain('mesh.api.ledger.open-wallet');
      expect(body).toContain('publish WalletOpened');
      expect(body).toContain('mesh-ledger');
    } finally {
      await ledger.stop().catch(() => undefined);
      await nc.close();
    }
  });
});
