/** The one way to turn a caught value into text for a message: an Error's message, else `String(value)`. */
export function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
