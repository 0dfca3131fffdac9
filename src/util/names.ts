/**
 * Names of services, stacks and tags become file names, container names and discovery keys,
 * so they must be DNS labels: nothing like `../x`, `a/b` or upper case may pass.
 */
export const DNS_LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

export function isDnsLabel(name: string): boolean {
  return DNS_LABEL.test(name);
}

export function dnsLabelProblem(name: string): string | undefined {
  if (isDnsLabel(name)) return undefined;
  if (name.length === 0) return 'is empty';
  if (name.length > 63) return 'is longer than 63 characters';
  if (/[A-Z]/.test(name)) return 'has upper-case letters';
  if (/[/\\.]/.test(name)) return 'contains a path separator or dot';
  if (/^-|-$/.test(name)) return 'starts or ends with a hyphen';
  return 'has characters other than a-z, 0-9 and -';
}

/** Turn any string (a file name, say) into a DNS label, for defaults. */
export function toDnsLabel(text: string): string {
  const label = text
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 63)
    .replace(/-+$/g, '');
  return label || 'stack';
}
