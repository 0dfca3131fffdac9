/**
 * A cgroup (v2) per process instance, where we may make one: the kernel then tracks the whole
 * tree of the instance, also what double-forks into a new session and clears its environment,
 * and `stop` finds every survivor in `cgroup.procs` (or kills them all with `cgroup.kill`).
 *
 * Optional by design: without a writable cgroup v2 hierarchy (no permission, cgroup v1 only, not
 * Linux) every function here is a no-op, and the `STACK_INSTANCE` environment marker is what finds
 * survivors. A child is moved into its cgroup right after spawning, so something it forks in that
 * first instant is found by the marker only.
 *
 * The folder is never read from a pid file: it is derived from the instance marker, checked to be
 * a plain name, so a forged pid file cannot point `stop` at another cgroup (the root one).
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';

const PARENT = 'atproto-stacks';

let base: string | null | undefined;

/** Our own cgroup v2 folder's parent for instance cgroups, or null when there is none we can write. */
function instancesRoot(): string | null {
  if (base !== undefined) return base;
  base = null;
  try {
    const mount = readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .map((line) => line.split(' '))
      .find((f) => f[f.indexOf('-') + 1] === 'cgroup2')?.[4];
    const own = readFileSync('/proc/self/cgroup', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('0::'))
      ?.slice(3);
    if (!mount || own === undefined) return base;
    const root = path.join(mount, own, PARENT);
    mkdirSync(root, { recursive: true });
    base = root;
  } catch {
    base = null; // not permitted here: the marker is all we have
  }
  return base;
}

/** The cgroup folder of an instance marker (`<stack>/<service>/<replica>/<nonce>`), if cgroups are usable. */
export function instanceCgroup(instance: string): string | undefined {
  const name = instance.replaceAll('/', '.');
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name) || name.includes('..')) return undefined;
  const root = instancesRoot();
  return root ? path.join(root, name) : undefined;
}

/** Move `pid` into a new cgroup for `instance`; false when cgroups are not usable here. */
export function joinInstanceCgroup(instance: string, pid: number): boolean {
  const dir = instanceCgroup(instance);
  if (!dir) return false;
  sweepEmptyCgroups();
  // Twice: another `stack` sweeping at the same moment may remove the folder between the two steps.
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      mkdirSync(dir, { recursive: true });
      writeFileSync(path.join(dir, 'cgroup.procs'), String(pid));
      return true;
    } catch {
      // try once more, then do without
    }
  }
  return false;
}

/**
 * Remove every empty instance cgroup (of any stack): instances killed from outside, or whose
 * `stack` died, leave theirs. The kernel refuses to remove a cgroup that has members, so only
 * empty ones go.
 */
function sweepEmptyCgroups(): void {
  const root = instancesRoot();
  if (!root) return;
  let names: string[];
  try {
    names = readdirSync(root, { withFileTypes: true })
      .filter((e) => e.isDirectory())
      .map((e) => e.name);
  } catch {
    return;
  }
  for (const name of names) {
    try {
      rmdirSync(path.join(root, name));
    } catch {
      // has members: in use
    }
  }
}

/** Live members of the instance's cgroup (empty when it has none, or none exists). */
export function instanceCgroupMembers(instance: string): number[] {
  const dir = instanceCgroup(instance);
  if (!dir) return [];
  try {
    return readFileSync(path.join(dir, 'cgroup.procs'), 'utf8')
      .split('\n')
      .filter((l) => /^\d+$/.test(l))
      .map(Number)
      .filter((pid) => pid > 1 && pid !== process.pid);
  } catch {
    return [];
  }
}

/** Remove the instance's cgroup once it is empty (a cgroup with members cannot be removed: kept). */
export function removeInstanceCgroup(instance: string): void {
  const dir = instanceCgroup(instance);
  if (!dir || !existsSync(dir)) return;
  try {
    rmdirSync(dir);
  } catch {
    // still has members, or already gone
  }
}

/** Remove the empty cgroups of a stack's instances (tasks that exited by themselves leave theirs). */
export function removeStackCgroups(stack: string): void {
  const root = instancesRoot();
  if (!root) return;
  let names: string[];
  try {
    names = readdirSync(root);
  } catch {
    return;
  }
  for (const name of names) {
    if (!name.startsWith(`${stack}.`)) continue;
    try {
      rmdirSync(path.join(root, name));
    } catch {
      // not empty (something still runs), or gone
    }
  }
}

/** Whether instances get a cgroup here (for tests and messages). */
export function cgroupsUsable(): boolean {
  return instancesRoot() !== null;
}
