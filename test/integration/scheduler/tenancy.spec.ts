import {
  FunctionDeployed,
  TaskSubmitted,
  cancelTaskRequest,
  deployFunctionRequest,
  functionRequest,
  functionsRequest,
  isEvent,
  nodesRequest,
  poolsRequest,
  storageRequest,
  submitTaskRequest,
  taskRequest,
  tasksRequest,
  tenantSubject,
  type RequestData,
} from '@mesh/contracts';
import { MeshClient, RequestError } from '@mesh/runtime';
import { useSchedulerHarness } from './harness';

/**
 * Tenants on a real nats-server (no NATS auth here: the subject carries the caller, as the
 * permissions guarantee in production). alice and bob each own a wallet; `pub` is the operator's
 * public function. No node is registered, so tasks stay pending and nothing but the requests writes.
 */
describe('scheduler tenancy on NATS', () => {
  const h = useSchedulerHarness({ connectionName: 'scheduler-tenancy-test', env: { LOG_LEVEL: 'warn' }, minBalance: '0' });
  let alice: MeshClient;
  let bob: MeshClient;
  const fn = (functionId: string, extra: Partial<RequestData<typeof deployFunctionRequest>> = {}) => ({
    functionId,
    image: 'mesh/task-base:latest',
    script: `echo ${functionId}`,
    memoryBytes: 64 * 1024 * 1024,
    ...extra,
  });
  const task = (functionId: string, walletId: string, taskId: string, input: RequestData<typeof submitTaskRequest>['input'] = { inline: 'aGk=' }) => ({
    functionId,
    walletId,
    taskId,
    input,
  });

  /** The request is refused as forbidden (matching `message`) and the log did not move. */
  async function forbidden(request: () => Promise<unknown>, message: RegExp): Promise<void> {
    const before = await h.store.headPosition();
    const err: unknown = await request().then(
      (reply) => new Error(`accepted: ${JSON.stringify(reply)}`),
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(RequestError);
    expect(err).toMatchObject({ code: 'forbidden', message: expect.stringMatching(message) as string });
    expect(await h.store.headPosition()).toBe(before);
  }

  beforeAll(async () => {
    alice = await h.tenantClient('alice', 5000);
    bob = await h.tenantClient('bob', 5000);
    await h.openWallet('w-alice', 'greedy', 'user', 'alice');
    await h.openWallet('w-bob', 'greedy', 'user', 'bob');
    await h.client.request(deployFunctionRequest, fn('pub'));
    await alice.request(deployFunctionRequest, fn('a-fn'));
    await alice.request(submitTaskRequest, task('a-fn', 'w-alice', 'a-task'));
  }, 60_000);

  it("records alice's function and task as hers, and shows her her own task", async () => {
    const [deployed] = await h.store.read('function-a-fn');
    expect(isEvent(deployed, FunctionDeployed) && deployed.data.tenantId).toBe('alice');
    const [submitted] = await h.store.read('task-a-task');
    expect(isEvent(submitted, TaskSubmitted) && submitted.data.tenantId).toBe('alice');
    expect(await alice.request(taskRequest, { taskId: 'a-task' })).toMatchObject({ taskId: 'a-task', walletId: 'w-alice', state: 'pending' });
    expect((await alice.request(tasksRequest, {})).tasks.map((t) => t.taskId)).toEqual(['a-task']);
    expect(await alice.request(functionRequest, { functionId: 'a-fn' })).toMatchObject({ functionId: 'a-fn', tenantId: 'alice' });
    // alice may run the operator's public function on her wallet, with an input in her own bucket
    const byRef = task('pub', 'w-alice', 'a-ref', { objectRef: { bucket: 'mesh-input-alice', key: 'in-1' } });
    expect(await alice.request(submitTaskRequest, byRef)).toMatchObject({ taskId: 'a-ref', state: 'pending', duplicate: false });
  });

  it("refuses bob alice's wallet, alice's function, and alice's input bucket, writing nothing", async () => {
    await forbidden(() => bob.request(submitTaskRequest, task('pub', 'w-alice', 'b-1')), /^forbidden: tenant bob may not submit tasks on wallet w-alice$/);
    await forbidden(() => bob.request(submitTaskRequest, task('a-fn', 'w-bob', 'b-2')), /^forbidden: tenant bob may not run function a-fn$/);
    await forbidden(
      () => bob.request(submitTaskRequest, task('pub', 'w-bob', 'b-3', { objectRef: { bucket: 'mesh-input-alice', key: 'secret' } })),
      /^forbidden: tenant bob may not read bucket mesh-input-alice: .*own input bucket mesh-input-bob$/,
    );
    // and alice's task id is not bob's to resubmit (nor to learn it is a duplicate)
    await forbidden(() => bob.request(submitTaskRequest, task('pub', 'w-bob', 'a-task')), /^forbidden: tenant bob may not submit task a-task$/);
    // bob's own wallet with the public function is fine
    expect(await bob.request(submitTaskRequest, task('pub', 'w-bob', 'b-ok'))).toMatchObject({ taskId: 'b-ok', walletId: 'w-bob' });
  });

  it("refuses bob a redeploy of alice's function (hijack) and any tenant a price plan choice", async () => {
    await forbidden(() => bob.request(deployFunctionRequest, fn('a-fn', { script: 'steal' })), /^forbidden: tenant bob may not redeploy function a-fn$/);
    await forbidden(() => bob.request(deployFunctionRequest, fn('pub', { script: 'mine now' })), /tenant bob may not redeploy function pub/);
    await forbidden(
      () => alice.request(deployFunctionRequest, fn('a-fn', { pricePlanId: 'cheap' })),
      /^forbidden: tenant alice may not choose pricePlanId cheap for function a-fn: price plans are assigned by the operator/,
    );
    await forbidden(() => bob.request(deployFunctionRequest, fn('b-new', { pricePlanId: 'cheap' })), /may not choose pricePlanId cheap/);
    expect((await h.store.read('function-b-new')).length).toBe(0);
  });

  it("hides alice's task and function from bob: no read, no cancel, not in his lists", async () => {
    await forbidden(() => bob.request(taskRequest, { taskId: 'a-task' }), /^forbidden: tenant bob may not read task a-task$/);
    await forbidden(() => bob.request(cancelTaskRequest, { taskId: 'a-task' }), /^forbidden: tenant bob may not cancel task a-task$/);
    await forbidden(() => bob.request(functionRequest, { functionId: 'a-fn' }), /^forbidden: tenant bob may not read function a-fn$/);
    const bobTasks = await bob.request(tasksRequest, {});
    expect(bobTasks.tasks.map((t) => t.taskId)).toEqual(['b-ok']);
    expect((await bob.request(tasksRequest, { walletId: 'w-alice' })).tasks).toEqual([]);
    const bobFunctions = (await bob.request(functionsRequest, {})).functions;
    expect(bobFunctions.map((f) => f.functionId)).toEqual(['pub']);
    expect(JSON.stringify(bobFunctions)).not.toContain('echo a-fn'); // alice's script
    expect((await alice.request(functionsRequest, {})).functions.map((f) => f.functionId)).toEqual(['a-fn', 'pub']);
    // the operator sees everything
    expect((await h.client.request(tasksRequest, {})).tasks.map((t) => t.taskId).sort()).toEqual(['a-ref', 'a-task', 'b-ok']);
    expect(await h.client.request(taskRequest, { taskId: 'a-task' })).toMatchObject({ taskId: 'a-task' });
  });

  it('lets alice cancel her own task, and the operator redeploy hers keeping her the owner', async () => {
    expect(await alice.request(cancelTaskRequest, { taskId: 'a-ref' })).toMatchObject({ taskId: 'a-ref', state: 'cancelled' });
    const redeployed = await h.client.request(deployFunctionRequest, fn('a-fn', { script: 'echo fixed by the operator' }));
    expect(redeployed).toMatchObject({ version: 2, tenantId: 'alice', changed: true });
    expect(await alice.request(deployFunctionRequest, fn('a-fn', { script: 'echo v3' }))).toMatchObject({ version: 3, tenantId: 'alice' });
  });

  it('answers no operator-only query on a tenant subject (no responders), and answers them for the operator', async () => {
    for (const definition of [poolsRequest, nodesRequest, storageRequest]) {
      const err: unknown = await bob.requestRaw(tenantSubject('bob', definition.subject), {}, 2000).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'no_responders' });
      await expect(h.client.request(definition, {})).resolves.toBeDefined();
    }
  });
});
