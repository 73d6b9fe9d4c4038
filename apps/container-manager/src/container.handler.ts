import { KeyedMutex } from '@mesh/common';
import { containerEvents, isEventOf, streamName, type RecordedEvent } from '@mesh/contracts';
import type { EventStore } from '@mesh/eventstore/port';
import { decideAndAppend, type Known } from './append';
import { containerDecider, evolveContainer, initialContainerState, type ContainerCommand, type ContainerState } from './domain/container-decider';
import { eventId } from './domain/event-ids';

/** The folded state of a container stream. */
export function foldContainer(containerId: string, history: RecordedEvent[]): Known<ContainerState> {
  let state = initialContainerState();
  for (const event of history) {
    if (!isEventOf(event, containerEvents)) throw new Error(`container ${containerId}: ${event.type} is not a container event`);
    state = evolveContainer(state, event);
  }
  return { state, version: history.length - 1 };
}

/** A container of this node as the handler sees it: its id and what is known of its stream. */
export interface ContainerStream {
  readonly containerId: string;
  stream: Known<ContainerState>;
}

/**
 * Loads, decides and appends the container aggregate (stream `container-<containerId>`). Commands
 * of one container run one at a time in call order (expected versions follow each other), so
 * ContainerStarted always precedes what is recorded next. Ids: `<containerId>-started`,
 * `<containerId>-rs-<decisionId>`, `<containerId>-stopped`.
 */
export class ContainerHandler {
  private readonly mutex = new KeyedMutex();

  constructor(private readonly store: EventStore) {}

  async load(containerId: string): Promise<Known<ContainerState>> {
    return foldContainer(containerId, await this.store.read(streamName('container', containerId)));
  }

  handle(c: ContainerStream, command: ContainerCommand): Promise<void> {
    return this.mutex.run(c.containerId, async () => {
      c.stream = await decideAndAppend(
        this.store,
        streamName('container', c.containerId),
        containerDecider,
        command,
        c.stream,
        () => this.load(c.containerId),
        (event) => ({ id: idOf(c.containerId, command), type: event.type, data: event.data }),
      );
    });
  }

  /** Resolves once every command of this container issued so far is done (failures are the callers'). */
  async settled(containerId: string): Promise<void> {
    await this.mutex.run(containerId, async () => undefined);
  }
}

function idOf(containerId: string, command: ContainerCommand): string {
  switch (command.kind) {
    case 'start':
      return eventId(containerId, 'started');
    case 'resize':
      return eventId(containerId, 'rs', command.resized.decisionId);
    case 'stop':
      return eventId(containerId, 'stopped');
  }
}
