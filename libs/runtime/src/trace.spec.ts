import { currentMessageContext, formatTraceparent, outgoingTraceparent, parseTraceparent, runInMessageContext } from './trace';

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

  it('parses and formats what it parsed, flags included', () => {
    expect(parseTraceparent(parent)).toEqual({ traceId: '4bf92f3577b34da6a3ce929d0e0e4736', spanId: '00f067aa0ba902b7', flags: '01' });
    expect(formatTraceparent({ traceId: '4bf92f3577b34da6a3ce929d0e0e4736', spanId: '00f067aa0ba902b7', flags: '00' })).toBe(
      '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00',
    );
    expect(outgoingTraceparent()).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
  });

  it('keeps the sampled flag of the message being handled and drops an invalid traceparent from the context', () => {
    runInMessageContext({ traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00' }, () => {
      expect(outgoingTraceparent()).toMatch(/^00-4bf92f3577b34da6a3ce929d0e0e4736-[0-9a-f]{16}-00$/);
    });
    runInMessageContext({ traceparent: 'garbage', correlationId: 'c2' }, () => {
      expect(currentMessageContext()?.traceparent).toBeUndefined();
      expect(parseTraceparent(outgoingTraceparent())?.traceId).toMatch(/^[0-9a-f]{32}$/);
    });
  });
});
