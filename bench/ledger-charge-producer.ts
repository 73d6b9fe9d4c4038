/**
 * The input side of the ledger benchmark: UsageCharged events appended to the log the way the
 * credit-manager does, from a child process. In the platform the charges come from another
 * service; here, keeping the producer out of the ledger's process keeps its CPU (publishing 64
 * charges at a time) off the ledger's event loop, so the figure is the ledger's own posting rate.
 *
 * Run as a child (fork): it connects and says `ready`; each `{ offset }` message appends the
 * charges offset..offset+count-1 and answers `done` with the seconds it took; `{ stop }` ends it.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { connect, headers as natsHeaders } from 'nats';
import { messageOf } from '@mesh/common';

/** Charges appended concurrently (the input side must not be the bottleneck). */
const INPUT_CONCURRENCY = 64;
const READY_TIMEOUT_MS = 30_000;

export const chargeData = (i: number, users = 20) => ({
  chargeId: `ch-c${i % 50}-${i}`,
  containerId: `c${i % 50}`,
  walletId: `u${i % users}`,
  functionId: 'f1',
  nodeId: 'n1',
  taskId: `t${i % 200}`,
  sampleId: `c${i % 50}-${i}`,
  sampleSeq: i + 1,
  windowStartMs: i * 1000,
  windowEndMs: i * 1000 + 1000,
  cpuNanos: 250_000_000,
  memoryByteMs: '67108864000',
  planId: 'default',
  planVersion: 1,
  currency: 'GRC',
  amount: '0.00041667',
  remainder: '1/3',
  providerWalletId: 'provider',
});

type Message = { kind: 'ready' } | { kind: 'done'; seconds: number } | { kind: 'error'; message: string };

export class ChargeProducer {
  private constructor(private readonly child: ChildProcess) {}

  /** Forks the producer and waits until it is connected. */
  static async start(natsUrl: string, charges: number, users: number): Promise<ChargeProducer> {
    const child = fork(__filename, [natsUrl, String(charges), String(users)], {
      execArgv: ['-r', 'ts-node/register/transpile-only', '-r', 'tsconfig-paths/register'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    const producer = new ChargeProducer(child);
    await producer.next('ready', READY_TIMEOUT_MS);
    return producer;
  }

  /** Appends charges offset..offset+count-1; resolves with the seconds the producer took. */
  async produce(offset = 0): Promise<number> {
    this.child.send({ offset });
    const done = await this.next('done', 120_000);
    return (done as Extract<Message, { kind: 'done' }>).seconds;
  }

  stop(): void {
    if (this.child.connected) this.child.send({ stop: true });
  }

  private next(kind: Message['kind'], timeoutMs: number): Promise<Message> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => fail(new Error(`charge producer: no '${kind}' within ${timeoutMs} ms`)), timeoutMs);
      const onMessage = (m: Message) => {
        if (m.kind === 'error') return fail(new Error(`charge producer: ${m.message}`));
        if (m.kind !== kind) return;
        cleanup();
        resolve(m);
      };
      const onExit = (code: number | null) => fail(new Error(`charge producer exited with ${code} before '${kind}'`));
      const cleanup = () => {
        clearTimeout(timer);
        this.child.off('message', onMessage);
        this.child.off('exit', onExit);
      };
      const fail = (err: Error) => {
        cleanup();
        this.child.kill('SIGKILL');
        reject(err);
      };
      this.child.on('message', onMessage);
      this.child.on('exit', onExit);
    });
  }
}

async function main(natsUrl: string, charges: number, users: number): Promise<void> {
  const nc = await connect({ servers: natsUrl, name: 'bench-charge-producer' });
  const js = nc.jetstream();
  const send = (m: Message) => process.send!(m);
  const produce = async (offset: number) => {
    const start = process.hrtime.bigint();
    let next = offset;
    const end = offset + charges;
    await Promise.all(
      Array.from({ length: INPUT_CONCURRENCY }, async () => {
        while (next < end) {
          const i = next++;
          const data = chargeData(i, users);
          const h = natsHeaders();
          h.set('Nats-Msg-Id', `charged-${data.chargeId}`);
          h.set('Mesh-Revision', '0');
          h.set('Mesh-Type', 'UsageCharged');
          const envelope = {
            id: `charged-${data.chargeId}`,
            type: 'UsageCharged',
            stream: `meter-${data.containerId}-${i}`,
            occurredAt: new Date().toISOString(),
            schemaVersion: 1,
            correlationId: data.chargeId,
            causationId: data.chargeId,
            data,
            revision: 0,
          };
          // One meter stream per charge, so the input side needs no per-stream ordering.
          await js.publish(`mesh.events.meter.${data.containerId}-${i}`, Buffer.from(JSON.stringify(envelope)), { headers: h });
        }
      }),
    );
    return Number(process.hrtime.bigint() - start) / 1e9;
  };
  process.on('message', (m: { offset?: number; stop?: boolean }) => {
    if (m.stop) {
      void nc.close().finally(() => process.disconnect?.());
      return;
    }
    produce(m.offset ?? 0).then(
      (seconds) => send({ kind: 'done', seconds }),
      (err) => send({ kind: 'error', message: err instanceof Error && err.stack ? err.stack : messageOf(err) }),
    );
  });
  process.on('disconnect', () => void nc.close().finally(() => process.exit(0)));
  send({ kind: 'ready' });
}

if (require.main === module) {
  const [url, charges, users] = process.argv.slice(2);
  main(url, Number(charges), Number(users)).catch((err) => {
    console.error(err);
    process.exit(1);
  });
}
