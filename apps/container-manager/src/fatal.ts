import { Logger } from '@nestjs/common';
import { messageOf } from '@mesh/common';

const log = new Logger('container-manager');

/**
 * The one way a background loop gives up: an event that could not be recorded after every retry
 * (sample, container or execution event written outside a message handler) must not be dropped.
 * The process exits loudly; at the next start the reconcile recovers from the log and Docker
 * (adopts or stops the containers, fails the interrupted executions, resumes the samples).
 */
export function fatal(what: string, err: unknown): never {
  log.fatal(`${what}; exiting so that the restart reconciles: ${err instanceof Error ? (err.stack ?? err.message) : messageOf(err)}`);
  process.exit(1);
}
