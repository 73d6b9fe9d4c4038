/** The message of anything thrown: an Error's message, else its string form. The one way to log an error. */
export function messageOf(err: unknown): string {
  if (err instanceof Error) return err.message;
  // Errors from another realm (Node's system errors under Jest's VM) fail instanceof but have a message.
  if (typeof err === 'object' && err !== null && 'message' in err && typeof err.message === 'string') return err.message;
  if (typeof err === 'string') return err;
  try {
    return JSON.stringify(err) ?? String(err);
  } catch {
    return String(err);
  }
}
