import fc from 'fast-check';
import { CappedBuffer, EndNonceWatcher } from './capture';

const NONCE = 'MESH-END-0123456789abcdef01234567';

describe('run output capture', () => {
  it('finds the end nonce however the stream is split, passes every byte before it on, and reads the exit code', () => {
    fc.assert(
      fc.property(
        fc.string({ maxLength: 300 }),
        fc.integer({ min: 0, max: 255 }),
        fc.array(fc.integer({ min: 1, max: 40 }), { maxLength: 20 }),
        (before, code, cuts) => {
          const whole = Buffer.from(`${before}${NONCE}:${code}:${NONCE}trailing`, 'latin1');
          const seen: Buffer[] = [];
          const watcher = new EndNonceWatcher(NONCE, (b) => seen.push(b));
          let at = 0;
          for (const cut of [...cuts, whole.length]) {
            watcher.push(whole.subarray(at, Math.min(whole.length, at + cut)));
            at = Math.min(whole.length, at + cut);
            if (at >= whole.length) break;
          }
          watcher.flush();
          expect(watcher.exitCode).toBe(code);
          expect(Buffer.concat(seen).toString('latin1')).toBe(before);
        },
      ),
    );
  });

  it('without a nonce passes everything on and leaves the end to the stream', () => {
    const seen: Buffer[] = [];
    const watcher = new EndNonceWatcher(undefined, (b) => seen.push(b));
    watcher.push(Buffer.from(`abc${NONCE}:1:${NONCE}`));
    expect(watcher.exitCode).toBeUndefined();
    expect(Buffer.concat(seen).toString()).toBe(`abc${NONCE}:1:${NONCE}`);
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
