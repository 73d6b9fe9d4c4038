import { SERVICES } from '@mesh/contracts';
import { NatsServerProcess, ServiceProcess } from '@mesh/testing';

/**
 * Each of the five services as its own process: boots against a real nats-server, answers
 * `mesh.api.<service>.health`, and exits 0 on SIGTERM; a bad variable stops it with exit code 1
 * and a message naming the variable and the rule.
 */
describe('the five services as processes', () => {
  let server: NatsServerProcess;
  const processes: ServiceProcess[] = [];

  beforeAll(async () => {
    server = await NatsServerProcess.start();
  });
  afterAll(async () => {
    for (const p of processes) await p.stop('SIGKILL');
    await server.dispose();
  });

  it('boot, answer health and shut down cleanly on SIGTERM', async () => {
    const env = {
      NATS_URL: server.url,
      NODE_ID: `boot-${process.pid}`,
      LEDGER_HTTP_PORT: '0',
      IDLE_TIMEOUT_MS: '60000',
    };
    for (const service of SERVICES) processes.push(ServiceProcess.start(service, env));
    for (const p of processes) {
      const health = await p.healthy(server.url, 90_000);
      expect(health).toMatchObject({ service: p.service, status: 'ok', pid: p.child.pid });
    }
    for (const p of processes) {
      const code = await p.stop('SIGTERM');
      if (code !== 0) throw new Error(`${p.service} exited with ${code} on SIGTERM:\n${p.logs}`);
    }
  }, 180_000);

  it('refuses to start with a bad variable, naming it and the rule', async () => {
    const p = ServiceProcess.start('ledger', { NATS_URL: 'http://localhost:4222' });
    processes.push(p);
    expect(await p.exited).toBe(1);
    expect(p.logs).toContain('NATS_URL: must be a nats: or tls: URL');
  }, 60_000);
});
