import { Controller, Inject, Injectable, Logger, type OnApplicationBootstrap, type OnModuleDestroy } from '@nestjs/common';
import type { NatsConnection, Subscription } from 'nats';
import {
  HEARTBEAT_PREFIX,
  ResourceSampled,
  StandingChanged,
  containerEvents,
  isEvent,
  isEventOf,
  listScaledContainers,
  nodeEvents,
  nodeHeartbeatSchema,
  scaledContainerDetail,
  type RecordedEvent,
  type RequestData,
} from '@mesh/contracts';
import { messageOf } from '@mesh/common';
import { NATS_CONNECTION, OnEvents, OnRequest, decodeJson } from '@mesh/runtime';
import { ScalerEngine } from './scaler.engine';

/**
 * Thin adapters: durable consumers of the categories the scaler reacts to (history replayed on the
 * first start: deliver 'all'), and the two queries. All logic is in ScalerEngine and the decider.
 */
@Controller()
export class ScalerController {
  constructor(private readonly engine: ScalerEngine) {}

  // A container's facts and samples are in one partition (both keyed by its id): replicas share the
  // containers; standings and nodes go to every replica, as each acts on its own containers.
  @OnEvents('container', { partitioned: true })
  async onContainer(event: RecordedEvent): Promise<void> {
    if (isEventOf(event, containerEvents)) await this.engine.onContainerEvent(event);
  }

  @OnEvents('usage', { partitioned: true })
  async onUsage(event: RecordedEvent): Promise<void> {
    if (isEvent(event, ResourceSampled)) await this.engine.onSample(event);
  }

  @OnEvents('standing', { everyReplica: true })
  async onStanding(event: RecordedEvent): Promise<void> {
    if (isEvent(event, StandingChanged)) await this.engine.onStanding(event);
  }

  @OnEvents('node', { everyReplica: true })
  async onNode(event: RecordedEvent): Promise<void> {
    if (isEventOf(event, nodeEvents)) await this.engine.onNodeEvent(event);
  }

  @OnRequest(listScaledContainers)
  containers(body: RequestData<typeof listScaledContainers>) {
    return this.engine.list(body);
  }

  @OnRequest(scaledContainerDetail)
  container(body: RequestData<typeof scaledContainerDetail>) {
    return this.engine.detail(body.containerId);
  }
}

/** Node heartbeats (core NATS, not persisted): the freshest view of each node's used capacity. */
@Injectable()
export class HeartbeatListener implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly log = new Logger('HeartbeatListener');
  private subscription?: Subscription;

  constructor(
    @Inject(NATS_CONNECTION) private readonly nc: NatsConnection,
    private readonly engine: ScalerEngine,
  ) {}

  onApplicationBootstrap(): void {
    this.subscription = this.nc.subscribe(`${HEARTBEAT_PREFIX}.*`, {
      callback: (err, msg) => {
        if (err) return;
        try {
          const beat = nodeHeartbeatSchema.safeParse(decodeJson(msg.data));
          if (beat.success) this.engine.onHeartbeat(beat.data);
          else this.log.debug(`ignoring a malformed heartbeat on ${msg.subject}: ${beat.error.issues[0]?.message}`);
        } catch (parseErr) {
          this.log.debug(`ignoring a heartbeat that is not JSON on ${msg.subject}: ${messageOf(parseErr)}`);
        }
      },
    });
  }

  onModuleDestroy(): void {
    if (!this.nc.isClosed()) this.subscription?.unsubscribe();
  }
}
