import { ContractError } from '@mesh/contracts';
import { CategoryOwnershipError, InMemoryEventStore } from '@mesh/eventstore';
import { ValidatingEventStore } from './validating-store';

describe('ValidatingEventStore', () => {
  const opened = { id: 'w-1', type: 'WalletOpened', data: {} };

  it('given a service appending to a category another service owns, then it refuses before writing, naming service, stream and owner', async () => {
    const inner = new InMemoryEventStore();
    const store = new ValidatingEventStore(inner, 'scaler');
    const refuse = () => store.append('wallet-alice', [opened], 'no_stream');
    expect(refuse).toThrow(CategoryOwnershipError);
    expect(refuse).toThrow('scaler may not append to wallet-alice: category wallet is written only by ledger');
    let refusal: unknown;
    try {
      await refuse();
    } catch (err) {
      refusal = err;
    }
    expect(refusal).toMatchObject({ code: 'category_not_owned', service: 'scaler', stream: 'wallet-alice', owner: 'ledger' });
    expect(await inner.headPosition()).toBe(0n);
  });

  it('given the owner, then the append goes on to the catalog checks', () => {
    const store = new ValidatingEventStore(new InMemoryEventStore(), 'ledger');
    expect(() => store.append('wallet-alice', [opened], 'no_stream')).toThrow(ContractError);
  });

  it('given an open category (test, deadletter), then any service may write it', async () => {
    const store = new ValidatingEventStore(new InMemoryEventStore(), 'scaler');
    await expect(store.append('test-open', [{ id: 't-1', type: 'TestEvent', data: { n: 1 } }], 'no_stream')).resolves.toMatchObject({ nextExpectedVersion: 0 });
  });

  it('given a writer that is no service (*), then ownership is not checked', () => {
    const store = new ValidatingEventStore(new InMemoryEventStore(), '*');
    expect(() => store.append('wallet-alice', [opened], 'no_stream')).toThrow(ContractError);
  });

  it('given an event that names another stream, then it refuses the append', async () => {
    const inner = new InMemoryEventStore();
    const store = new ValidatingEventStore(inner, 'scaler');
    await inner.append('test-a', [{ id: 't-a', type: 'TestEvent', data: { n: 1 } }], 'no_stream');
    const [recorded] = await inner.read('test-a');
    const refuse = () => store.append('test-b', [{ ...recorded, id: 't-b' }], 'no_stream');
    expect(refuse).toThrow(ContractError);
    expect(refuse).toThrow(/events\.0\.stream.*is test-a, not the stream appended to \(test-b\)/);
    expect(await inner.read('test-b')).toEqual([]);
  });

  it('given events without a stream or naming this one, then they are appended with the context ids', async () => {
    const store = new ValidatingEventStore(new InMemoryEventStore(), 'scaler');
    await store.append('test-c', [{ id: 't-c1', type: 'TestEvent', data: { n: 1 } }], 'no_stream');
    const [recorded] = await store.read('test-c');
    await expect(store.append('test-c', [{ ...recorded, id: 't-c2' }], 0)).resolves.toMatchObject({ nextExpectedVersion: 1 });
  });
});
