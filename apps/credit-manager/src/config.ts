import { env } from '@mesh/config';

/** Variables of the credit-manager service (in addition to the common ones in libs/config). */
export const CreditManagerEnv = {
  CREDIT_MANAGER_INSTANCE: env.id('Instance name of this credit-manager (for logs and health)', 'credit-manager'),
};
