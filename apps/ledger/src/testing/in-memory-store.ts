export { InMemoryEventStore } from '@mesh/eventstore';
