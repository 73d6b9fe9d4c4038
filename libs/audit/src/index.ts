export { verifyAudit, formatAuditReport, type AuditReport, type ProjectionSnapshotSource, type VerifyOptions } from './verify';
export { GENESIS_HASH, SEAL_MEMBERS, canonicalJson, hashOfWalletEventBody, walletEventBody, walletEventHash } from './hash';
export { MacKeyRing, walletMacProblem, type MacKey, type MacTrail } from './mac';
export { DEFAULT_MAC_KEY_FILE, ensureMacKeyRing, keyFileText, readMacKeyRing } from './mac-key-file';
export { balanceDelta } from './balance';
export { DEFAULT_HTTP_TOKEN_KEY_FILE, ensureHttpTokenKey, httpTokenFor, readHttpTokenKey, verifyHttpToken } from './http-token';
