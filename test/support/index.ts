export * from './nats-server';
export * from './service-process';
