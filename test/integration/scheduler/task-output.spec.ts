import { randomBytes, createHash } from 'node:crypto';
import {
  LIMITS,
  TASK_OUTPUT_CHUNK_BYTES_MAX,
  TaskSubmitted,
  TaskSucceeded,
  deployFunctionRequest,
  inputBucketOf,
  isEvent,
  outputBucketOf,
  submitTaskRequest,
  taskOutputRequest,
} from '@mesh/contracts';
import { MeshClient, RequestError } from '@mesh/runtime';
import { useSchedulerHarness } from './harness';

/**
 * Tenants without JetStream (docs/security.md): inputs go inline in submit-task (the scheduler
 * stores one larger than an event carries in the owner's input bucket), outputs come back through
 * the task-output query, chunk by chunk, owner-checked. Real nats-server and scheduler; the output
 * object is written directly (as the container-manager would) with its TaskSucceeded.
 */
describe('task inputs and outputs through the scheduler', () => {
  const h = useSchedulerHarness({ connectionName: 'scheduler-task-output-test', env: { LOG_LEVEL: 'warn' }, minBalance: '0' });
  let alice: MeshClient;
  let bob: MeshClient;
  /** 1.25 chunks of the largest size and a bit: three chunks, the last one short. */
  const output = randomBytes(2 * TASK_OUTPUT_CHUNK_BYTES_MAX + 12_345);
  const fn = { functionId: 'a-fn', image: 'mesh/task-base:latest', script: 'echo hi', memoryBytes: 64 * 1024 * 1024 };

  /** Refused with `code` and a message matching `message`, and the log did not move. */
  async function refused(request: () => Promise<unknown>, code: string, message: RegExp): Promise<void> {
    const before = await h.store.headPosition();
    const err: unknown = await request().then(
      (reply) => new Error(`accepted: ${JSON.stringify(reply).slice(0, 300)}`),
      (e: unknown) => e,
    );
    if (!(err instanceof RequestError)) throw err;
    expect(err).toMatchObject({ code, message: expect.stringMatching(message) as string });
    expect(await h.store.headPosition()).toBe(before);
  }

  beforeAll(async () => {
    alice = await h.tenantClient('alice', 20_000);
    bob = await h.tenantClient('bob', 20_000);
    await h.openWallet('w-alice', 'greedy', 'user', 'alice');
    await alice.request(deployFunctionRequest, fn);
    await alice.request(submitTaskRequest, { functionId: 'a-fn', walletId: 'w-alice', taskId: 'a-out', input: { inline: 'aGk=' } });
    await alice.request(submitTaskRequest, { functionId: 'a-fn', walletId: 'w-alice', taskId: 'a-pending', input: { inline: 'aGk=' } });
    // What the container-manager does when the execution succeeds: the object, then the result.
    const os = await h.nc.jetstream().views.os(outputBucketOf('alice'));
    await os.putBlob({ name: 'a-out-1' }, output);
    await h.append('task-a-out', TaskSucceeded, 'a-out-succeeded', {
      taskId: 'a-out',
      functionId: 'a-fn',
      walletId: 'w-alice',
      attempt: 1,
      executionId: 'a-out-1',
      outputRef: { bucket: outputBucketOf('alice'), key: 'a-out-1' },
      durationMs: 10,
    });
  }, 60_000);

  it('alice reads her output chunk by chunk up to done, and the chunks are the object', async () => {
    const chunks: Buffer[] = [];
    let offset = 0;
    for (let i = 0; i < 10; i++) {
      const reply = await alice.request(taskOutputRequest, { taskId: 'a-out', offset });
      expect(reply).toMatchObject({ taskId: 'a-out', totalBytes: output.length, offset });
      const chunk = Buffer.from(reply.chunk, 'base64');
      expect(chunk.length).toBeLessThanOrEqual(TASK_OUTPUT_CHUNK_BYTES_MAX);
      chunks.push(chunk);
      offset += chunk.length;
      if (reply.done) break;
    }
    expect(chunks.map((c) => c.length)).toEqual([TASK_OUTPUT_CHUNK_BYTES_MAX, TASK_OUTPUT_CHUNK_BYTES_MAX, 12_345]);
    expect(Buffer.concat(chunks).equals(output)).toBe(true);
  });

  it('a chunk of a chosen size at a chosen offset is that slice; at the end it is empty and done; past it, refused', async () => {
    const reply = await alice.request(taskOutputRequest, { taskId: 'a-out', offset: 5000, limitBytes: 1000 });
    expect({ ...reply, chunk: Buffer.from(reply.chunk, 'base64').equals(output.subarray(5000, 6000)) }).toEqual({
      taskId: 'a-out',
      totalBytes: output.length,
      offset: 5000,
      chunk: true,
      done: false,
    });
    expect(await alice.request(taskOutputRequest, { taskId: 'a-out', offset: output.length })).toMatchObject({ chunk: '', done: true });
    await refused(() => alice.request(taskOutputRequest, { taskId: 'a-out', offset: output.length + 1 }), 'offset_out_of_range', /offset \d+ is past the end/);
    // Raw, past the client's own check: the service refuses it too.
    await refused(
      () => alice.requestRaw(alice.subjectFor(taskOutputRequest), { taskId: 'a-out', limitBytes: TASK_OUTPUT_CHUNK_BYTES_MAX + 1 }),
      'invalid_input',
      new RegExp(`limitBytes.*must be <= ${TASK_OUTPUT_CHUNK_BYTES_MAX}`),
    );
  });

  it("bob may not read alice's output (forbidden, naming the task); the operator may", async () => {
    await refused(() => bob.request(taskOutputRequest, { taskId: 'a-out' }), 'forbidden', /^forbidden: tenant bob may not read task a-out$/);
    const reply = await h.client.request(taskOutputRequest, { taskId: 'a-out', limitBytes: 64 });
    expect(Buffer.from(reply.chunk, 'base64').equals(output.subarray(0, 64))).toBe(true);
  });

  it('a task without an output yet is no_output', async () => {
    await refused(() => alice.request(taskOutputRequest, { taskId: 'a-pending' }), 'no_output', /^task a-pending has no output \(state pending\)$/);
  });

  it("an inline input larger than an event carries is stored in the owner's input bucket and recorded by reference; a resubmit is a duplicate", async () => {
    const input = randomBytes(LIMITS.inlineInputBytesMax + 1);
    const submit = () =>
      alice.request(submitTaskRequest, { functionId: 'a-fn', walletId: 'w-alice', taskId: 'a-big', input: { inline: input.toString('base64') } });
    expect(await submit()).toMatchObject({ taskId: 'a-big', state: 'pending', duplicate: false });
    const [submitted] = await h.store.read('task-a-big');
    const key = `sha256-${createHash('sha256').update(input).digest('hex')}`;
    expect(isEvent(submitted, TaskSubmitted) && submitted.data.input).toEqual({ objectRef: { bucket: inputBucketOf('alice'), key } });
    const stored = await (await h.nc.jetstream().views.os(inputBucketOf('alice'))).getBlob(key);
    expect(Buffer.from(stored!).equals(input)).toBe(true);
    expect(await submit()).toMatchObject({ taskId: 'a-big', duplicate: true });
  });

  it('an inline input up to the event limit stays inline; above the request limit it is refused, naming the limit', async () => {
    const small = randomBytes(LIMITS.inlineInputBytesMax).toString('base64');
    await alice.request(submitTaskRequest, { functionId: 'a-fn', walletId: 'w-alice', taskId: 'a-small', input: { inline: small } });
    const [submitted] = await h.store.read('task-a-small');
    expect(isEvent(submitted, TaskSubmitted) && submitted.data.input).toEqual({ inline: small });
    await refused(
      () =>
        alice.requestRaw(alice.subjectFor(submitTaskRequest), {
          functionId: 'a-fn',
          walletId: 'w-alice',
          taskId: 'a-huge',
          input: { inline: randomBytes(LIMITS.requestInputBytesMax + 1).toString('base64') },
        }),
      'invalid_input',
      new RegExp(`inline input too large \\(at most ${LIMITS.requestInputBytesMax} bytes, LIMITS.requestInputBytesMax\\)`),
    );
  });
});
