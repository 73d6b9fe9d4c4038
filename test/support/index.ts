export * from './nats-server';
export * from './service-process';
export * from './mesh-cli';
export * from './events';
export * from './recorded';
export * from './nats-cluster';
