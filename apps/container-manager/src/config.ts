import { env } from '@mesh/config';

/** Variables of the container-manager service (in addition to the common ones in libs/config). */
export const ContainerManagerEnv = {
  CONTAINER_MANAGER_INSTANCE: env.id('Instance name of this container-manager (for logs and health)', 'container-manager'),
};
