import { currentMessageContext, outgoingTraceparent, parseTraceparent, runInMessageContext } from './trace';

describe('W3C trace context', () => {
  const parent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';

  it('starts a new trace outside any message', () => {
    const tp = parseTraceparent(outgoingTraceparent());
    expect(tp?.traceId).toMatch(/^[0-9a-f]{32}$/);
  });

  it('continues the trace of the message being handled with a new span', () => {
    runInMessageContext({ traceparent: parent, correlationId: 'c1', causationId: 'e1' }, () => {
      const child = parseTraceparent(outgoingTraceparent());
      expect(child?.traceId).toBe('4bf92f3577b34da6a3ce929d0e0e4736');
      expect(child?.spanId).not.toBe('00f067aa0ba902b7');
      expect(currentMessageContext()).toMatchObject({ correlationId: 'c1', causationId: 'e1' });
    });
  });

  it('ignores malformed or all-zero traceparents', () => {
    expect(parseTraceparent('garbage')).toBeUndefined();
    expect(parseTraceparent('00-00000000000000000000000000000000-00f067aa0ba902b7-01')).toBeUndefined();
  });
});
