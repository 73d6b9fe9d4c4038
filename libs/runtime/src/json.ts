/** JSON for the wire: bigint becomes a decimal string (money and positions), never a lossy number. */
export function encodeJson(value: unknown): Uint8Array {
  return Buffer.from(JSON.stringify(value, (_key, v: unknown) => (typeof v === 'bigint' ? v.toString() : v)));
}

export function decodeJson(data: Uint8Array): unknown {
  if (data.length === 0) return {};
  return JSON.parse(Buffer.from(data).toString('utf8')) as unknown;
}
