import type { EventData, UsageCharged } from '@mesh/contracts';
import type { WalletCommand } from '../../apps/ledger/src/domain/wallet';

/**
 * Builders the ledger's specs share (imported as `@mesh/testing/ledger`, not from the index: only
 * the ledger's specs need the ledger's types).
 */
type OpenWallet = Extract<WalletCommand, { type: 'OpenWallet' }>;

/** Opens `walletId`: a greedy GRC user wallet, no debt allowed, no minimum, opened at 1 ms, unless `extra` says otherwise. */
export const openWallet = (walletId: string, extra: Partial<OpenWallet> = {}): OpenWallet => ({
  type: 'OpenWallet',
  walletId,
  kind: 'user',
  currency: 'GRC',
  maxDebt: 0n,
  minBalance: 0n,
  policy: 'greedy',
  atMs: 1,
  ...extra,
});

/** The data of a UsageCharged for one sample (seq 1, one second) of container c1 (function f1, task t1, node n1) on the default plan. */
export const usageChargedData = (charge: {
  chargeId: string;
  sampleId: string;
  walletId: string;
  providerWalletId: string;
  amount: string;
}): EventData<typeof UsageCharged> => ({
  chargeId: charge.chargeId,
  containerId: 'c1',
  walletId: charge.walletId,
  functionId: 'f1',
  nodeId: 'n1',
  taskId: 't1',
  sampleId: charge.sampleId,
  sampleSeq: 1,
  windowStartMs: 0,
  windowEndMs: 1000,
  cpuNanos: 1,
  memoryByteMs: '1',
  planId: 'default',
  planVersion: 1,
  currency: 'GRC',
  amount: charge.amount,
  remainder: '0/1',
  providerWalletId: charge.providerWalletId,
});
