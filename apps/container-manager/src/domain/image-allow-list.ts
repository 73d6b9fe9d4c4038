/**
 * The images tasks may run in, as the operator set them on this node: the task base image
 * (MESH_BASE_IMAGE) plus CONTAINER_IMAGES_ALLOWED (comma-separated). A TaskDispatched names its
 * function's image, but the node runs only what its operator allowed: references are compared
 * exactly (no tag or digest is implied: `mesh/task-base` does not allow `mesh/task-base:latest`).
 */
export const IMAGES_ALLOWED_MAX = 256;

export function parseImageAllowList(baseImage: string, extra: string | undefined): ReadonlySet<string> {
  const images = [baseImage, ...(extra ?? '').split(',')].map((i) => i.trim()).filter((i) => i !== '');
  if (images.length > IMAGES_ALLOWED_MAX) throw new Error(`CONTAINER_IMAGES_ALLOWED: at most ${IMAGES_ALLOWED_MAX} images, got ${images.length}`);
  for (const image of images) {
    if (!/^[A-Za-z0-9][A-Za-z0-9._/:@-]{0,255}$/.test(image)) throw new Error(`CONTAINER_IMAGES_ALLOWED: "${image}" is not a Docker image reference`);
  }
  return new Set(images);
}

/** Why a dispatched image is refused, or undefined when it is allowed. */
export function imageRefusal(image: string, allowed: ReadonlySet<string>): string | undefined {
  if (allowed.has(image)) return undefined;
  return `image ${image} is not on this node's allow-list (MESH_BASE_IMAGE and CONTAINER_IMAGES_ALLOWED: ${[...allowed].join(', ')})`;
}
