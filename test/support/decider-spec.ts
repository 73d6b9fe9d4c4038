import type { Decider } from '@mesh/eventstore/decider';

/**
 * Given/when/then for pure deciders (Emmett style), no I/O:
 *   spec(walletDecider).given([opened]).when(deposit).then([deposited])
 *   spec(walletDecider).given([opened]).when(badWithdraw).thenThrows(DomainError, /insufficient/)
 */
export function spec<S, C, E extends { type: string; data: unknown }>(decider: Decider<S, C, E>) {
  return {
    given(events: E[]) {
      const state = events.reduce(decider.evolve, decider.initialState());
      return {
        state,
        when(command: C) {
          const run = () => decider.decide(command, state);
          return {
            then(expected: E[] | ((events: E[]) => void)) {
              const actual = run();
              if (typeof expected === 'function') expected(actual);
              else expect(actual).toEqual(expected);
              return actual;
            },
            thenNothing() {
              expect(run()).toEqual([]);
            },
            thenThrows(errorType: new (...args: never[]) => Error, message?: RegExp | string) {
              expect(run).toThrow(errorType);
              if (message) expect(run).toThrow(message);
            },
          };
        },
      };
    },
  };
}
