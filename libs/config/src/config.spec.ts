import { ConfigError, commonEnv, env, loadConfig } from './index';

describe('configuration from the environment', () => {
  it('applies defaults', () => {
    const config = loadConfig(commonEnv, {});
    expect(config).toMatchObject({ NATS_URL: 'nats://127.0.0.1:4222', EVENT_STORE: 'jetstream', EVENT_REPLICAS: 1 });
  });

  it('names every bad variable and its rule', () => {
    const spec = { ...commonEnv, SAMPLE_INTERVAL_MS: env.int('sample interval', 1000, 250, 60_000, ' ms') };
    try {
      loadConfig(spec, { NATS_URL: 'http://x', SAMPLE_INTERVAL_MS: '100', EVENT_STORE: 'mongo' });
      throw new Error('expected a ConfigError');
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as ConfigError).problems).toEqual([
        { variable: 'NATS_URL', rule: 'must be a nats: or tls: URL (comma-separated for several)' },
        { variable: 'EVENT_STORE', rule: 'must be one of jetstream|kurrentdb' },
        { variable: 'SAMPLE_INTERVAL_MS', rule: 'must be >= 250 ms' },
      ]);
    }
  });
});
