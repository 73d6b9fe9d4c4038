import { execFile, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { NatsConnection } from 'nats';
import type { z } from 'zod';
import { ResourceSampled, SERVICES, ScalingDecided, UsageCharged, cancelTaskRequest, deployFunctionRequest, submitTaskRequest } from '@mesh/contracts';
import { MeshClient } from '@mesh/runtime';
import { NatsServerProcess, ServiceProcess, eventually } from '@mesh/testing';

/**
 * Docs that run: every fenced block of README.md and docs/*.md is classified below, and each one a
 * user would copy runs against a real stack (a nats-server, the five services as processes, the
 * real Docker engine): shell lines through bash with `./mesh` being the real CLI (bin/mesh.js),
 * JavaScript snippets with node as ES modules, JSON payloads through the zod definitions the
 * services validate with. A block that is not classified, or a classification that matches no
 * block, fails the spec: a new or edited example has to be run here or skipped with a reason.
 *
 *   shell        README's command blocks: each line in order, state carried over (`hello.sh`, the
 *                `<taskId>` submit printed); `mesh events tail` live until a new event shows, then Ctrl-C
 *   js           the NATS client snippets (README, docs/credit-manager.md), with NATS_URL set
 *   transcript   docs/ledger.md's audit command: run, its output checked
 *   payload      request bodies and event data (docs/<service>.md) parsed by their zod definitions
 *   illustration diagrams, figures and elided shapes, each with its reason
 * Lines that cannot run here are in NOT_RUN with the reason or the test that covers them. About 40 s.
 */
const ROOT = join(__dirname, '..', '..');
const MESH = join(ROOT, 'bin', 'mesh.js');
const FILES = [
  'README.md',
  ...readdirSync(join(ROOT, 'docs'))
    .filter((f) => f.endsWith('.md'))
    .sort()
    .map((f) => `docs/${f}`),
];

type Handling =
  /** Shell lines, each run with bash in a scratch folder, `./mesh` being `node bin/mesh.js`; exit 0 expected (NOT_RUN lines are skipped). */
  | { kind: 'shell'; expect?: Record<string, RegExp> }
  /** A JavaScript snippet (top-level await), run with node as an ES module; exit 0 and `expect` on stdout. */
  | { kind: 'js'; expect: RegExp[] }
  /** A command (first line, run with bash from the repository root) followed by its abridged output. */
  | { kind: 'transcript'; expect: RegExp[] }
  /** A JSON body or event data (one per line with `perLine`), checked by the zod definition the service uses. */
  | { kind: 'payload'; schema: z.ZodType; perLine?: boolean }
  /** Not something to run: a diagram, figures, or output shown for reading. */
  | { kind: 'illustration'; reason: string };

/** Every block, by file and a piece of its text (its first line, or what tells it apart). */
const CLASSIFIED: { file: string; contains: string; handling: Handling }[] = [
  { file: 'README.md', contains: './mesh demo', handling: { kind: 'shell' } },
  {
    file: 'README.md',
    contains: './mesh up --detach',
    handling: {
      kind: 'shell',
      expect: {
        './mesh status': /ledger\s.*\sok\s/,
        './mesh wallet deposit alice 4': /deposited 4 into alice \(ref tx-0001\); balance 4/,
        './mesh task submit hello': /state\s+succeeded/,
        './mesh task output': /hello, world/,
        './mesh wallet balance alice': /walletId\s+alice/,
        './mesh wallet statement alice': /FundsDeposited/,
        './mesh audit verify': /audit PASSED/,
        './mesh report --out reports': /report written to .*index\.html/,
      },
    },
  },
  {
    file: 'README.md',
    contains: './mesh tenant create alice --out alice.json',
    // Every line is in NOT_RUN: the stack here runs without authorization; the security spec runs them.
    handling: { kind: 'shell' },
  },
  { file: 'README.md', contains: '  mesh CLI ──requests──▶ scheduler', handling: { kind: 'illustration', reason: 'architecture diagram' } },
  {
    file: 'README.md',
    contains: "consumers.get('MESH_EVENTS'",
    handling: { kind: 'js', expect: [/^\d+ WalletOpened alice 0$/m, /^\d+ FundsDeposited alice 4$/m] },
  },
  { file: 'README.md', contains: "nc.request('mesh.query.ledger.balance'", handling: { kind: 'js', expect: [/^\{"ok":true,"data":\{"walletId":"alice",/m] } },
  {
    file: 'README.md',
    contains: "nc.subscribe('mesh.tenant.alice.events.>')",
    handling: { kind: 'js', expect: [/^mesh\.tenant\.alice\.events\.wallet\.alice-feed WalletOpened revision 0$/m] },
  },
  { file: 'docs/architecture.md', contains: 'apps/ ', handling: { kind: 'illustration', reason: 'repository layout' } },
  { file: 'docs/architecture.md', contains: '            deploy/submit', handling: { kind: 'illustration', reason: 'event flow diagram' } },
  {
    file: 'docs/chaos.md',
    contains: '# short run (CI',
    handling: { kind: 'illustration', reason: 'runs the soak for minutes: the short run is test/chaos/chaos.spec.ts itself, in the same suite' },
  },
  { file: 'docs/chaos.md', contains: 'chaos soak chaos', handling: { kind: 'illustration', reason: 'the summary of one recorded run' } },
  { file: 'docs/container-manager.md', contains: '{ "sampleId"', handling: { kind: 'payload', schema: ResourceSampled.schema } },
  { file: 'docs/credit-manager.md', contains: 'ResourceSampled (usage-<c>)', handling: { kind: 'illustration', reason: 'charging flow diagram' } },
  { file: 'docs/credit-manager.md', contains: '{ "chargeId"', handling: { kind: 'payload', schema: UsageCharged.schema } },
  {
    file: 'docs/credit-manager.md',
    contains: "nc.request('mesh.api.credit-manager.set-price-plan'",
    handling: {
      kind: 'js',
      expect: [/^\{"ok":true,"data":\{"plan":\{"planId":"fast"/m, /"code":"invalid_input".*"field":"cpuPerCoreHour","rule":"must be greater than zero"/],
    },
  },
  {
    file: 'docs/ledger.md',
    contains: 'NATS_URL=nats://127.0.0.1:4222 npx ts-node',
    handling: {
      kind: 'transcript',
      expect: [/^audit PASSED: log positions 1\.\.\d+/m, /^ {2}wallets \d+, charges \d+/m, /^ {2}PASS {2}books-balance {10}sum of all usage debits/m],
    },
  },
  { file: 'docs/ledger.md', contains: 'TOKEN=$(./mesh ledger token)', handling: { kind: 'shell' } },
  {
    file: 'docs/scaler.md',
    contains: 'demand 1000: 1000 -> 2000',
    handling: { kind: 'illustration', reason: 'what the staircase simulation gives; asserted by apps/scaler/src/domain/scaling-decider.spec.ts' },
  },
  { file: 'docs/scaler.md', contains: '{ "decisionId": "scale-c3f9a0b1c2d3-1", "containerId"', handling: { kind: 'payload', schema: ScalingDecided.schema } },
  {
    file: 'docs/scaler.md',
    contains: 'request:  { "walletId": "alice" }',
    handling: {
      kind: 'illustration',
      reason: 'request/reply shape with elisions; the schemas are listScaledContainers in libs/contracts and docs/asyncapi.json',
    },
  },
  {
    file: 'docs/scaler.md',
    contains: 'request:  { "containerId"',
    handling: {
      kind: 'illustration',
      reason: 'request/reply shape with elisions; the schemas are scaledContainerDetail in libs/contracts and docs/asyncapi.json',
    },
  },
  {
    file: 'docs/scaler.md',
    contains: 'staircase rise -> ScalingDecided',
    handling: { kind: 'illustration', reason: 'benchmark figures (`npm run bench scaler`, BENCHMARKS.md)' },
  },
  { file: 'docs/deploy.md', contains: 'npm run images', handling: { kind: 'shell' } },
  { file: 'docs/deploy.md', contains: 'kubectl label node worker-1', handling: { kind: 'shell' } },
  { file: 'docs/deploy.md', contains: './mesh cluster status', handling: { kind: 'shell' } },
  { file: 'docs/deploy.md', contains: 'docker swarm join-token worker', handling: { kind: 'shell' } },
  { file: 'docs/scheduler.md', contains: '{ "functionId": "resize", "image"', handling: { kind: 'payload', schema: deployFunctionRequest.schema } },
  {
    file: 'docs/scheduler.md',
    contains: '{ "functionId": "resize", "walletId"',
    handling: { kind: 'payload', schema: submitTaskRequest.schema, perLine: true },
  },
  { file: 'docs/scheduler.md', contains: '{ "taskId": "job-42"', handling: { kind: 'payload', schema: cancelTaskRequest.schema } },
];

/** Shell lines of the docs that are not run here, and why (each must still appear in a block). */
const NOT_RUN: Record<string, string> = {
  './mesh tenant create':
    'needs the auth-enabled stack (this stack runs without authorization); test/security/nats-permissions.spec.ts runs it ("mesh tenant create makes a tenant the CLI then acts as")',
  './mesh --creds alice.json':
    'needs the auth-enabled stack (this stack runs without authorization); test/security/nats-permissions.spec.ts runs it ("mesh tenant create makes a tenant the CLI then acts as")',
  './mesh tenant list':
    'needs the auth-enabled stack (this stack runs without authorization); test/security/nats-permissions.spec.ts runs it ("mesh tenant create makes a tenant the CLI then acts as")',
  './mesh demo':
    'provisions the machine and runs the three scenarios for minutes; the scenarios are test/e2e/scenarios.spec.ts (the same cli/demo/scenarios.ts on the same kind of stack)',
  'npm test': 'runs this spec among the others',
  './mesh up --detach':
    'provisions this machine (apt, dockerd, the base image) and starts its stack in .data/; this spec starts the same five services as processes the way `mesh up` does (test/support/service-process.ts), and test/integration/cli/compiled.spec.ts starts a compiled service as `mesh up` does',
  './mesh down': "stops this machine's stack (the pid files in .data/run, provision.sh nats-down); the spec stops its own stack afterwards",
  'TOKEN=$(./mesh ledger token)':
    'needs the key file of a ledger with its HTTP server on (this stack runs the ledger with LEDGER_HTTP_PORT=0); test/integration/ledger/tenancy.spec.ts runs `mesh ledger token` on the key file its ledger created and reads over HTTP with the token',
  'curl -s -H "Authorization: Bearer $TOKEN"':
    'the HTTP API with a bearer token: test/integration/ledger/tenancy.spec.ts (tokens, tenant scope, Host check, the audit bound)',
  'npm run images':
    'builds the base image (debootstrap, about a minute) and the service image (minutes); test/deploy/image.spec.ts builds it when missing and runs it against a real nats-server',
  'docker build --build-arg BASE_IMAGE=node:20-bookworm-slim': 'pulls node:20-bookworm-slim from a registry, which this machine cannot reach',
  'docker run -d --name mesh-scaler':
    'needs a NATS server at that address; test/deploy/image.spec.ts runs the image the same way (the scaler, --network host, a real nats-server) and checks it turns healthy and drains on docker stop',
  'kubectl label node': 'needs a Kubernetes cluster; none is reachable here (docs/deploy.md says so)',
  'helm repo add nats': 'needs helm and the chart repository; the values file is checked against the chart by test/deploy/k8s.spec.ts',
  'helm install nats': 'needs a Kubernetes cluster and helm; the values file is checked against the chart by test/deploy/k8s.spec.ts',
  'kubectl apply -k': 'needs a Kubernetes cluster; test/deploy/k8s.spec.ts renders the overlay and validates every object against the API schemas',
  'kubectl -n mesh rollout status': 'needs a Kubernetes cluster',
  'bash infra/local/provision.sh install': 'installs packages on this machine (apt); npm test runs it as its pretest (infra/local/prepare-tests.sh)',
  'bash infra/local/provision.sh docker':
    'starts dockerd and builds the task base image on this machine; npm test runs it as its pretest (infra/local/prepare-tests.sh)',
  'npm ci': 'installs the dependencies of this checkout, which the tests already use',
  './mesh cluster up':
    'deploys a Swarm stack on this engine for minutes (and may build the images); test/deploy/swarm.spec.ts runs `mesh cluster up` with its own stack name and free ports',
  'export NATS_URL=nats://127.0.0.1:4222,nats://127.0.0.1:4223':
    "the stack's URL and credentials as `mesh cluster up` prints them; test/deploy/swarm.spec.ts runs the CLI with the printed values",
  './mesh demo --scenario normal':
    'the normal scenario against the Swarm stack: test/deploy/swarm.spec.ts runs it (cli/demo/scenarios.ts) with a service container killed',
  './mesh cluster status': 'test/deploy/swarm.spec.ts runs `mesh cluster status --json` against its stack',
  './mesh cluster down': 'test/deploy/swarm.spec.ts runs it and checks nothing of its stack is left',
  'docker swarm join-token worker': 'needs a second machine to join; this one runs a one-node swarm (test/deploy/swarm.spec.ts)',
  'docker swarm join --token': 'needs a second machine to join',
  'docker node update --label-add': 'needs a multi-node swarm; `mesh cluster up` labels the one node here (test/deploy/swarm.spec.ts)',
  'docker node update --label-rm': 'needs a multi-node swarm',
};

/** `./mesh events tail ...` follows the log live: run in the background until an event shows up, then stopped with Ctrl-C. */
const LIVE = './mesh events tail';

interface Block {
  file: string;
  line: number;
  lang: string;
  text: string;
}

/** The fenced blocks of a markdown file, with the line of their opening fence. */
function fencedBlocks(file: string, markdown: string): Block[] {
  const blocks: Block[] = [];
  let open: { line: number; lang: string; lines: string[] } | undefined;
  markdown.split('\n').forEach((l, i) => {
    const fence = /^```\s*([\w-]*)\s*$/.exec(l);
    if (!open && fence) open = { line: i + 1, lang: fence[1], lines: [] };
    else if (open && /^```\s*$/.test(l)) {
      blocks.push({ file, line: open.line, lang: open.lang, text: open.lines.join('\n') });
      open = undefined;
    } else open?.lines.push(l);
  });
  if (open) throw new Error(`${file}:${open.line}: code block never closed`);
  return blocks;
}

const BLOCKS = FILES.flatMap((f) => fencedBlocks(f, readFileSync(join(ROOT, f), 'utf8')));
const classification = (b: Block) => CLASSIFIED.filter((c) => c.file === b.file && b.text.includes(c.contains));
const handled = BLOCKS.map((block) => ({ block, handling: classification(block)[0]?.handling }));
const runnable = handled.filter((h): h is { block: Block; handling: Handling } => h.handling !== undefined && h.handling.kind !== 'illustration');
const shellLines = (text: string) =>
  text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));

interface Run {
  code: number | null;
  out: string;
  err: string;
}

describe('docs: every example of README.md and docs/*.md', () => {
  it('classifies every code block exactly once (run, checked, or skipped with a reason)', () => {
    const problems = [
      ...BLOCKS.filter((b) => classification(b).length !== 1).map(
        (b) => `${b.file}:${b.line} (${b.lang || 'no language'}) matches ${classification(b).length} entries of CLASSIFIED: "${b.text.split('\n')[0]}"`,
      ),
      ...CLASSIFIED.filter((c) => !BLOCKS.some((b) => b.file === c.file && b.text.includes(c.contains))).map(
        (c) => `CLASSIFIED entry matches no block: ${c.file} "${c.contains}"`,
      ),
      ...Object.keys(NOT_RUN)
        .filter((skipped) => !handled.some((h) => h.handling?.kind === 'shell' && shellLines(h.block.text).some((l) => l.startsWith(skipped))))
        .map((skipped) => `NOT_RUN line appears in no shell block: ${skipped}`),
      ...handled.flatMap(({ block, handling }) =>
        handling?.kind === 'shell'
          ? Object.keys(handling.expect ?? {})
              .filter((prefix) => !shellLines(block.text).some((l) => l.startsWith(prefix)))
              .map((prefix) => `${block.file}:${block.line}: the output check of "${prefix}" matches no line of the block`)
          : [],
      ),
      // JavaScript and shell must run: a js/bash block may not be waved through as an illustration.
      ...handled
        .filter((h) => h.handling?.kind === 'illustration' && /^(js|javascript|ts|bash|sh|shell)$/.test(h.block.lang))
        .map((h) => `${h.block.file}:${h.block.line} is ${h.block.lang}: it must run, not be an illustration`),
    ];
    expect(problems).toEqual([]);
  });

  describe('against a real stack', () => {
    let server: NatsServerProcess;
    let nc: NatsConnection;
    let client: MeshClient;
    const services: ServiceProcess[] = [];
    const nodeId = `docs-${process.pid}`;
    let scratch: string;
    let env: NodeJS.ProcessEnv;
    /** Placeholders of the docs (`<taskId>`) and what they stand for in this run. */
    const placeholders = new Map<string, string>();

    const run = (file: string, args: string[], options: { cwd: string; timeoutMs: number; input?: string }) =>
      new Promise<Run>((resolve) => {
        const child = execFile(file, args, { cwd: options.cwd, env, timeout: options.timeoutMs, maxBuffer: 16 * 1024 * 1024 }, (error, out, err) =>
          resolve({ code: error ? (typeof error.code === 'number' ? error.code : null) : 0, out, err }),
        );
        if (options.input !== undefined) child.stdin?.end(options.input);
      });
    const bash = (line: string, cwd = scratch) => {
      const command = [...placeholders].reduce((l, [k, v]) => l.split(k).join(v), line).replace(/^\.\/mesh\b/, `node ${JSON.stringify(MESH)}`);
      return run('bash', ['-c', command], { cwd, timeoutMs: 90_000 });
    };
    const explain = (what: string, r: Run) => `${what}\nexit ${r.code}\n--- stdout\n${r.out}\n--- stderr\n${r.err}`;

    beforeAll(async () => {
      execFileSync('docker', ['info'], { stdio: 'ignore' }); // a clear failure when no engine answers
      server = await NatsServerProcess.start();
      const serviceEnv = { NATS_URL: server.url, NODE_ID: nodeId, LEDGER_HTTP_PORT: '0', LOG_LEVEL: 'warn' };
      for (const s of SERVICES) services.push(ServiceProcess.start(s, serviceEnv));
      await Promise.all(services.map((p) => p.healthy(server.url, 150_000)));
      nc = await server.connect('docs-spec');
      client = new MeshClient(nc, 10_000);
      mkdirSync(join(ROOT, '.data'), { recursive: true });
      // Inside the repository, so the snippets' `import ... from 'nats'` finds node_modules.
      scratch = mkdtempSync(join(ROOT, '.data', 'docs-examples-'));
      env = { ...process.env, NATS_URL: server.url, MESH_FROM_SOURCE: '1', MESH_DATA_DIR: join(scratch, '.data') };
    }, 180_000);

    afterAll(async () => {
      await Promise.all(services.map((p) => p.stop('SIGTERM')));
      execFileSync('bash', ['-c', `docker ps -aq --filter label=mesh.node=${nodeId} | xargs -r docker rm -f`], { stdio: 'ignore' });
      await nc?.close();
      await server?.dispose();
      if (scratch) rmSync(scratch, { recursive: true, force: true });
    }, 60_000);

    /** Runs `./mesh events tail ...` until an event of a wallet opened meanwhile shows up, then Ctrl-C: exit 0. */
    async function runLive(line: string): Promise<void> {
      const jsm = await nc.jetstreamManager();
      const consumers = async () => (await jsm.consumers.list('MESH_EVENTS').next()).length;
      const before = await consumers();
      const args = line.replace(/^\.\/mesh\s+/, '').split(/\s+/);
      const child = spawn(process.execPath, [MESH, ...args], { cwd: scratch, env, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      child.stdout.on('data', (c) => (out += String(c)));
      child.stderr.on('data', (c) => (err += String(c)));
      const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
      try {
        await eventually(async () => (await consumers()) > before, 30_000, `${line} to start following`);
        // The count can rise with another process's short-lived read consumer before the tail's own
        // exists (a wallet opened then is older than the tail): open one more wallet until one shows.
        let opened = 0;
        let openedAtMs = 0;
        await eventually(
          async () => {
            if (/WalletOpened/.test(out) && /wallet-docs-live-\d/.test(out)) return true;
            // One wallet a second at most: the tail needs a moment to print the last one.
            if (opened < 10 && Date.now() - openedAtMs >= 1000) {
              openedAtMs = Date.now();
              await client.requestRaw('mesh.api.ledger.open-wallet', { walletId: `docs-live-${++opened}` });
            }
            return false;
          },
          20_000,
          `${line} to print a new wallet`,
        );
      } catch (error) {
        throw new Error(explain(`${line}: ${(error as Error).message}`, { code: child.exitCode, out, err }));
      } finally {
        child.kill('SIGINT');
      }
      expect(await exited).toBe(0);
    }

    for (const { block, handling } of runnable) {
      const name = `${block.file}:${block.line} (${handling.kind})`;
      switch (handling.kind) {
        case 'shell': {
          const expected = handling.expect ?? {};
          it(
            name,
            async () => {
              for (const line of shellLines(block.text)) {
                const skipped = Object.keys(NOT_RUN).find((s) => line.startsWith(s));
                if (skipped) continue;
                if (line.startsWith(LIVE)) {
                  await runLive(line.replace(/\s+#.*$/, ''));
                  continue;
                }
                const r = await bash(line);
                if (r.code !== 0) throw new Error(explain(line, r));
                const pattern = Object.entries(expected).find(([prefix]) => line.startsWith(prefix))?.[1];
                if (pattern && !pattern.test(r.out)) throw new Error(explain(`${line}: stdout does not match ${pattern}`, r));
                const taskId = /^taskId\s+(\S+)/m.exec(r.out)?.[1];
                if (line.includes('task submit') && taskId) placeholders.set('<taskId>', taskId);
              }
              if (block.text.includes('./mesh report --out reports')) expect(existsSync(join(scratch, 'reports', 'index.html'))).toBe(true);
            },
            120_000,
          );
          break;
        }
        case 'js':
          it(
            name,
            async () => {
              const file = join(scratch, `${block.file.replace(/\W/g, '-')}-${block.line}.mjs`);
              writeFileSync(file, block.text);
              const r = await run(process.execPath, [file], { cwd: scratch, timeoutMs: 30_000 });
              if (r.code !== 0) throw new Error(explain(`node ${file}`, r));
              for (const pattern of handling.expect) if (!pattern.test(r.out)) throw new Error(explain(`stdout does not match ${pattern}`, r));
            },
            60_000,
          );
          break;
        case 'transcript':
          it(
            name,
            async () => {
              // The command names the default server: here it is this spec's.
              const command = block.text.split('\n')[0].split('nats://127.0.0.1:4222').join(server.url);
              const r = await bash(command, ROOT);
              if (r.code !== 0) throw new Error(explain(command, r));
              for (const pattern of handling.expect) if (!pattern.test(r.out)) throw new Error(explain(`stdout does not match ${pattern}`, r));
            },
            60_000,
          );
          break;
        case 'payload':
          it(name, () => {
            const documents = handling.perLine ? block.text.split('\n').filter((l) => l.trim()) : [block.text];
            for (const document of documents) {
              const result = handling.schema.safeParse(JSON.parse(document));
              if (!result.success) throw new Error(`${document}\n${result.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('\n')}`);
            }
          });
          break;
      }
    }
  });
});
