export { verifyAudit, formatAuditReport, type AuditReport, type ProjectionSnapshotSource, type VerifyOptions } from './verify';
