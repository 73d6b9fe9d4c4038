import { DomainError } from '@mesh/contracts';
import { spec } from '@mesh/testing/decider-spec';
import { containerResized, containerStarted, containerStartedData, containerStopped, resizedData, stoppedData } from '../../test/fixtures';
import { containerDecider } from './container-decider';

describe('container decider: started', () => {
  it('announces a new container once', () => {
    spec(containerDecider).given([]).when({ kind: 'start', started: containerStartedData() }).then([containerStarted()]);
    spec(containerDecider).given([containerStarted()]).when({ kind: 'start', started: containerStartedData() }).thenNothing();
  });
  it('refuses to resize or stop a container that was never announced', () => {
    spec(containerDecider)
      .given([])
      .when({ kind: 'resize', resized: resizedData('s1', 500) })
      .thenThrows(DomainError, /before ContainerStarted/);
    spec(containerDecider)
      .given([])
      .when({ kind: 'stop', stopped: stoppedData() })
      .thenThrows(DomainError, /before ContainerStarted/);
  });
});

describe('container decider: resized', () => {
  it('applies each decision once and folds the limits in force', () => {
    spec(containerDecider)
      .given([containerStarted()])
      .when({ kind: 'resize', resized: resizedData('s1', 500) })
      .then([containerResized('s1', 500)]);
    const given = spec(containerDecider).given([containerStarted(), containerResized('s1', 500)]);
    given.when({ kind: 'resize', resized: resizedData('s1', 500) }).thenNothing();
    expect(given.state).toMatchObject({ status: 'started', cpuMillis: 500, memoryBytes: 128 * 1024 * 1024 });
    expect([...given.state.appliedDecisions]).toEqual(['s1']);
  });
});

describe('container decider: stopped', () => {
  it('stops once; nothing follows the stop', () => {
    spec(containerDecider)
      .given([containerStarted(), containerResized('s1', 500)])
      .when({ kind: 'stop', stopped: stoppedData('suspended') })
      .then([containerStopped('suspended')]);
    spec(containerDecider)
      .given([containerStarted(), containerStopped()])
      .when({ kind: 'stop', stopped: stoppedData('shutdown') })
      .thenNothing();
    spec(containerDecider)
      .given([containerStarted(), containerStopped()])
      .when({ kind: 'resize', resized: resizedData('s2', 800) })
      .thenNothing();
  });
});
