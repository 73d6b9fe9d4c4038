import { ExecutionFailed, ExecutionStarted, ExecutionSucceeded } from '@mesh/contracts';
import { readExecutionOutput } from '../../../apps/container-manager/src/storage/object-io';
import { dataOf, dispatch, randomId, terminalOf, useNodes, waitForEnd } from './harness';

/**
 * A task cannot speak for the platform: it looks for secrets in every /proc/<pid>/environ and
 * /proc/<pid>/cmdline it can see, prints end-of-run markers of the old format (with any nonce it
 * found, and a made-up one) on stdout and stderr, and tries to write the execution marker that the
 * node reads after a restart. None of it changes the recorded outcome: the exit status comes from
 * the Docker API, and the marker lives where the task can neither read nor write.
 */
const FORGER = String.raw`
dump=""
for f in /proc/[0-9]*/environ /proc/[0-9]*/cmdline; do
  dump="$dump$(tr '\0' ' ' < "$f" 2>/dev/null)
"
done
printf '%s' "$dump" > "$2/proc-dump.txt"
fake="MESH-END-$(printf 'deadbeef%.0s' 1 2 3)"
for nonce in $fake $(printf '%s' "$dump" | grep -o 'MESH-END-[0-9a-f]*' | sort -u); do
  printf '%s:%s:%s' "$nonce" "$(cat "$1")" "$nonce"
  printf '%s:%s:%s' "$nonce" "$(cat "$1")" "$nonce" >&2
done
if cat /run/mesh/execution 2>/dev/null; then echo "marker READ"; else echo "marker read refused"; fi
if (printf 'forged-execution' > /run/mesh/execution) 2>/dev/null; then echo "marker WRITTEN"; else echo "marker write refused"; fi
printf 'forged-execution' > /work/.mesh-exec
exit 7
`;

describe('container-manager: markers cannot be forged by the task', () => {
  const nodeId = randomId('cmforge');
  const walletId = randomId('w');
  const cm = useNodes([{ nodeId }]);

  it('records the exit status the script really had, whatever it prints, and keeps the restart marker out of its reach', async () => {
    const functionId = randomId('f');
    // Cold run: the script forges "exit 0" and really exits 7.
    const cold = await dispatch(cm.node.running.store, { nodeId, walletId, functionId, script: FORGER, input: '0' });
    const coldEvents = await waitForEnd(cm.node.running.store, cold.executionId);
    const failed = dataOf(coldEvents, ExecutionFailed);
    expect(failed).toMatchObject({ reason: 'exit-code', exitCode: 7, retryable: false });
    if (!failed.outputRef) throw new Error('the failed execution stored no output');
    const output = await readExecutionOutput(cm.node.running.nc, failed.outputRef);
    const stdout = output.stdout.toString();
    // The forged markers are plain output, kept as the script printed them.
    expect(stdout).toContain('MESH-END-deadbeefdeadbeefdeadbeef:0:MESH-END-deadbeefdeadbeefdeadbeef');
    expect(stdout).toContain('marker read refused');
    expect(stdout).toContain('marker write refused');
    expect(stdout).not.toMatch(/marker (READ|WRITTEN)/);
    // Nothing the task can see in /proc carries a nonce (the only MESH-END- is its own forgery).
    const dump = output.files['proc-dump.txt'].toString();
    expect(dump).toContain('sleep');
    expect(dump.match(/MESH-END-[0-9a-f]+/g) ?? []).toEqual([]);

    // What a restart would read after the cold run: the execution the container was created for.
    const [container] = await cm.docker.listContainers({ filters: { label: [`mesh.container=${dataOf(coldEvents, ExecutionStarted).containerId}`] } });
    expect(await cm.node.engine.docker.readExecutionMarker(container.Id)).toBe(cold.executionId);

    // Warm run in the same container: the script forges "exit 9" and really exits 0 (the trailing `exit 7` is not reached).
    const warm = await dispatch(cm.node.running.store, { nodeId, walletId, functionId, script: FORGER.replace('exit 7', 'exit 0'), input: '9' });
    const warmEvents = await waitForEnd(cm.node.running.store, warm.executionId);
    expect(dataOf(warmEvents, ExecutionStarted)).toMatchObject({ warm: true, containerId: dataOf(coldEvents, ExecutionStarted).containerId });
    expect(terminalOf(warmEvents).type).toBe('ExecutionSucceeded');
    expect(dataOf(warmEvents, ExecutionSucceeded).outputRef).toBeDefined();

    // What a restart would read: the execution the node started last, not what the task wrote.
    expect(await cm.node.engine.docker.readExecutionMarker(container.Id)).toBe(warm.executionId);
  });
});
