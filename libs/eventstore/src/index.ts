export * from './port';
export * from './errors';
export * from './envelope';
export * from './decider';
export * from './jetstream/jetstream-event-store';
export * from './kurrentdb/kurrentdb-event-store';
export * from './kurrentdb/relay';
export * from './factory';
