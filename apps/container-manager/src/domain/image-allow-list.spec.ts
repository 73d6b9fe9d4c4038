import { imageRefusal, parseImageAllowList } from './image-allow-list';

describe('image allow-list: a node runs only the images its operator allowed', () => {
  it('given only the base image, when a dispatch names it, then it is allowed; any other image is refused with the list', () => {
    const allowed = parseImageAllowList('mesh/task-base:latest', undefined);
    expect(imageRefusal('mesh/task-base:latest', allowed)).toBeUndefined();
    expect(imageRefusal('evil/miner:latest', allowed)).toBe(
      "image evil/miner:latest is not on this node's allow-list (MESH_BASE_IMAGE and CONTAINER_IMAGES_ALLOWED: mesh/task-base:latest)",
    );
  });

  it('given registered images (comma-separated, spaces ignored), when a dispatch names one, then it is allowed', () => {
    const allowed = parseImageAllowList('mesh/task-base:latest', ' python:3.12-slim , ,node:22 ');
    expect([...allowed]).toEqual(['mesh/task-base:latest', 'python:3.12-slim', 'node:22']);
    expect(imageRefusal('node:22', allowed)).toBeUndefined();
  });

  it('given an image without its tag, when compared, then it does not match the tagged reference (exact match only)', () => {
    expect(imageRefusal('mesh/task-base', parseImageAllowList('mesh/task-base:latest', undefined))).toMatch(/not on this node's allow-list/);
  });

  it('given a malformed entry, when parsed, then the configuration is refused naming it', () => {
    expect(() => parseImageAllowList('mesh/task-base:latest', 'ok:1,bad image')).toThrow(/"bad image" is not a Docker image reference/);
  });
});
