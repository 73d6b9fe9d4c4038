/**
 * A refused input. `field` names the offending path (dot-joined), `rule` the rule it broke, so a
 * client can show "wallet.amount: must have at most 8 decimals" without parsing prose.
 */
export interface ContractIssue {
  field: string;
  rule: string;
}

export class ContractError extends Error {
  readonly code = 'invalid_input';
  constructor(
    readonly where: string,
    readonly issues: ContractIssue[],
  ) {
    super(`${where}: ${issues.map((i) => `${i.field || '(root)'}: ${i.rule}`).join('; ')}`);
    this.name = 'ContractError';
  }

  static single(where: string, field: string, rule: string): ContractError {
    return new ContractError(where, [{ field, rule }]);
  }

  toJSON() {
    return { code: this.code, message: this.message, where: this.where, issues: this.issues };
  }
}

/** Domain refusals (unknown wallet, insufficient funds...) carry a stable code for clients and tests. */
export class DomainError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'DomainError';
  }
  toJSON() {
    return { code: this.code, message: this.message };
  }
}
