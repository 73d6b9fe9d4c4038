import { Duplex } from 'node:stream';
import { CappedBuffer, captureRun, type Demuxer } from './capture';

describe('run output capture', () => {
  it('takes the exit code from the exec, never from what the script prints (a forged end marker is plain output)', async () => {
    // The exec's socket: what the container prints comes in on the readable side; the job tar goes out on the writable one.
    const stream = new Duplex({ read: () => undefined, write: (_chunk, _encoding, callback) => callback() });
    // A demuxer that hands every byte to stdout (the multiplexing itself is dockerode's).
    const modem: Demuxer = { demuxStream: (source, stdout) => void source.pipe(stdout) };
    const run = captureRun(modem, stream, { executionId: 'e1', jobTar: Buffer.alloc(0), capBytes: 1024, env: [], user: '1000:1000' }, async () => 3);
    const forged = 'MESH-END-0123456789abcdef01234567:0:MESH-END-0123456789abcdef01234567';
    stream.push(`R${forged}`);
    expect(await run.started).toBe(true);
    stream.push(null);
    const result = await run.done;
    expect(result.exitCode).toBe(3);
    expect(result.stdout.toString()).toBe(forged);
  });

  it('keeps the first cap bytes and the last tail bytes, and counts all', () => {
    const b = new CappedBuffer(5, 4);
    b.push(Buffer.from('hello world'));
    b.push(Buffer.from('!!'));
    expect(b.buffer.toString()).toBe('hello');
    expect(b.tailText).toBe('ld!!');
    expect(b.total).toBe(13);
  });
});
