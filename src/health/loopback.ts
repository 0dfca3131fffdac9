import net from 'node:net';

/**
 * Health probes talk to loopback only unless a strategy is created with `allowRemoteHosts`:
 * a profile must not turn `stack` into a port scanner of other machines, and tests stay local.
 */
export function isLoopbackHost(host: string): boolean {
  const bare = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  if (bare === 'localhost') return true;
  if (net.isIPv4(bare)) return bare.startsWith('127.');
  if (net.isIPv6(bare)) return bare === '::1' || /^::ffff:127\./i.test(bare);
  return false;
}

export function remoteHostRefused(host: string): { ok: false; detail: string } {
  return { ok: false, detail: `refusing to probe non-loopback host ${host} (health probes are loopback only)` };
}
