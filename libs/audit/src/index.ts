export { verifyAudit, formatAuditReport, type AuditReport, type ProjectionSnapshotSource, type VerifyOptions } from './verify';
export { GENESIS_HASH, canonicalJson, walletEventHash } from './hash';
export { balanceDelta } from './balance';
