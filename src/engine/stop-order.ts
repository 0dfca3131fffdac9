/**
 * Reverse dependency order, as parallel as the reverse graph allows: a service is stopped once
 * every service that depends on it has been stopped (dependents first). Inside a circular group
 * the members' mutual dependencies are cut where the walk finds the cycle, so a group never waits
 * for itself.
 */

export interface StopItem {
  name: string;
  dependsOn: readonly string[];
  /**
   * Absent for a service with nothing to stop (a completed task, one never started): it still
   * passes the order on, so `api → migrate → db` stops api before db though migrate is gone.
   */
  stop?: () => Promise<void>;
}

/** Runs every item's `stop`; one failing does not keep the others from stopping. Returns the errors. */
export async function stopInReverseOrder(items: readonly StopItem[]): Promise<{ name: string; error: unknown }[]> {
  const byName = new Map(items.map((i) => [i.name, i]));
  const dependents = new Map<string, string[]>(items.map((i) => [i.name, []]));
  for (const item of items) {
    for (const dep of item.dependsOn) if (dep !== item.name) dependents.get(dep)?.push(item.name);
  }
  const errors: { name: string; error: unknown }[] = [];
  const done = new Map<string, Promise<void>>();
  const visiting = new Set<string>();

  const stopped = (name: string): Promise<void> => {
    const known = done.get(name);
    if (known) return known;
    visiting.add(name);
    const before = (dependents.get(name) ?? []).filter((d) => !visiting.has(d) || done.has(d)).map(stopped);
    const item = byName.get(name)!;
    const promise = Promise.all(before).then(async () => {
      try {
        await item.stop?.();
      } catch (error) {
        errors.push({ name, error });
      }
    });
    done.set(name, promise);
    return promise;
  };

  await Promise.all(items.map((i) => stopped(i.name)));
  return errors;
}
