/**
 * `extends:` merging. Mappings merge key by key (recursively); lists and scalars in the child
 * replace the parent's; a `null` in the child removes the key (e.g. `services: { ozone: null }`).
 */
export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

export function deepMerge(parent: unknown, child: unknown): unknown {
  if (!isPlainObject(parent) || !isPlainObject(child)) return child === undefined ? parent : child;
  const out: Record<string, unknown> = { ...parent };
  for (const [key, value] of Object.entries(child)) {
    if (value === null) delete out[key];
    else out[key] = key in parent ? deepMerge(parent[key], value) : value;
  }
  return out;
}
