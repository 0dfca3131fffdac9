/**
 * `stack status`: every service's state, health, pid/container, uptime, restarts and last health
 * result, and the last re-render of its templates — read from the state file and checked against the runtimes, so it works for a stack
 * started by another `stack` process, even one that was killed.
 *
 * A stack across hosts (`hosts:`), from any host: one row per instance on every host — host, state,
 * health, address, age of its last heartbeat — this machine's from its state and runtimes, the
 * others' from discovery (engine/status-hosts.ts); `--host` (or `STACK_HOST`) says which host this is.
 */
import { ExitCode } from '../../errors.js';
import type { LeadershipStatusView } from '../../engine/leadership-state.js';
import type { ServiceStatusView } from '../../engine/status.js';
import type { HostInstanceView } from '../../engine/status-hosts.js';
import { loadProfile } from '../../profile/load.js';
import { formatDuration } from '../../util/duration.js';
import { profileRef, type CommonOptions } from '../common.js';
import { thisHost } from '../host.js';
import { clean, pad, paint, type Output, type Style } from '../output.js';

interface StatusOptions extends CommonOptions {
  host?: string;
}

export async function run(opts: StatusOptions, o: Output): Promise<number> {
  const profile = loadProfile(profileRef(opts, o));
  const host = thisHost(profile, opts.host);
  const { stackStatus } = await import('../../engine/stack.js');
  const view = await stackStatus(profile, {
    ...(host !== undefined ? { host } : {}),
    onWarning: (message) => {
      if (!opts.json) o.err(paint(o, 'yellow', `warning: ${message}`));
    },
  });
  if (opts.json) {
    o.json(view);
    return ExitCode.ok;
  }
  if (view.hosts?.discoveryError !== undefined) {
    o.err(paint(o, 'yellow', `warning: discovery could not be read, only this machine's share is shown: ${clean(view.hosts.discoveryError)}`));
  }
  if (view.empty) {
    o.out(`stack '${profile.name}': nothing is running${view.hosts ? ' on any host' : ''}`);
    if (view.leadership) printLeadership(o, view.leadership);
    return ExitCode.ok;
  }
  const owner = !view.owner
    ? ''
    : view.owner.alive
      ? ` — supervised by pid ${view.owner.pid}${view.owner.detached ? ' (detached)' : ''}`
      : ` — started by pid ${view.owner.pid} (no longer running; nothing supervises it)`;
  const across = view.hosts ? ` — ${view.hosts.strategy}${view.hosts.host !== undefined ? `, this is host ${clean(view.hosts.host)}` : ''}` : '';
  o.out(paint(o, 'bold', `stack '${profile.name}'${view.phase ? `: ${clean(view.phase)}` : ''}${owner}${across}`));
  if (view.hosts) printHostsTable(o, view.hosts.instances);
  else printTable(o, view.services);
  printRenders(o, view.services);
  if (view.leadership) printLeadership(o, view.leadership);
  return ExitCode.ok;
}

/** Every instance on every host: where it runs, how it does, when its registration was last renewed. */
function printHostsTable(o: Output, instances: HostInstanceView[]): void {
  const rows = instances.map((i) =>
    [
      i.service,
      i.host,
      i.state,
      i.health,
      i.address !== undefined ? `${i.address.includes(':') ? `[${i.address}]` : i.address}${i.port !== undefined ? `:${i.port}` : ''}` : '-',
      i.heartbeatAgeMs !== undefined ? `${(i.heartbeatAgeMs / 1000).toFixed(1)}s ago` : '-',
      i.local ? (i.local.pid !== undefined ? String(i.local.pid) : (i.local.container ?? '-')) : '-',
      i.local?.uptimeMs !== undefined ? uptime(i.local.uptimeMs) : '-',
      i.local ? String(i.local.restarts) : '-',
    ].map(clean),
  );
  printRows(o, ['SERVICE', 'HOST', 'STATE', 'HEALTH', 'ADDRESS', 'HEARTBEAT', 'PID/CONTAINER', 'UPTIME', 'RESTARTS'], rows, 2);
}

/** Leader-follower: who leads (host, candidate, term, since when, from whom), the followers, this host's part. */
function printLeadership(o: Output, l: LeadershipStatusView): void {
  const who = (c: { host: string; id: string }) => `${clean(c.host)} (${clean(c.id)})`;
  o.out('');
  o.out(paint(o, 'bold', 'LEADER'));
  if (l.leader === null) o.out(paint(o, 'yellow', `  nobody leads${l.source === 'none' ? ' (as far as can be seen from here)' : ''}`));
  else {
    const since = l.since ? `, since ${clean(l.since)}` : '';
    const from = l.previous ? `, took over from ${who(l.previous)} (term ${l.previous.term})` : '';
    o.out(`  ${who(l.leader)} at ${clean(l.leader.address)}, term ${l.term ?? '?'}${since}${from}`);
  }
  if (l.source === 'supervisor')
    o.out(paint(o, 'yellow', `  as this host's supervisor last saw it: the election could not be asked${l.error ? ` (${clean(l.error)})` : ''}`));
  else if (l.error) o.out(paint(o, 'yellow', `  warning: ${clean(l.error)}`));
  o.out(`  followers: ${l.followers.length > 0 ? l.followers.map(who).join(', ') : '-'}`);
  if (l.singletons.length > 0) {
    const where = l.leader ? `on ${clean(l.leader.host)}${l.singletonsState ? ` (${l.singletonsState})` : ''}` : 'not running';
    o.out(`  singletons: ${l.singletons.map(clean).join(', ')} — ${where}`);
  }
  if (l.self) {
    const handover = l.self.lastHandover ? `; last hand-over seen at ${clean(l.self.lastHandover.at)} (term ${l.self.lastHandover.term})` : '';
    o.out(`  this host: ${who(l.self)} — ${l.self.alive ? l.self.role : 'not running'}${handover}`);
  }
}

/** The last re-render of each service's templates after startup (the supervisor keeps them following discovery). */
function printRenders(o: Output, services: ServiceStatusView[]): void {
  const rendered = services.filter((s) => s.lastRender);
  if (rendered.length === 0) return;
  o.out('');
  o.out(paint(o, 'bold', 'LAST RENDER'));
  for (const s of rendered) {
    const r = s.lastRender!;
    const what = r.outcome === 'changed' ? 're-rendered' : r.outcome === 'unchanged' ? 'unchanged' : 'failed, last good file kept';
    // Read from the state file: escaped like the table's cells.
    const line = `  ${clean(s.name)}: ${clean(r.template)} ${what} at ${clean(r.at)} — ${clean(r.reason)}`;
    o.out(r.outcome === 'failed' ? paint(o, 'yellow', line) : line);
  }
}

const STATE_STYLE: Record<string, Style> = {
  healthy: 'green',
  completed: 'green',
  failed: 'red',
  blocked: 'red',
  stopped: 'gray',
  running: 'green',
  rejected: 'red',
  registered: 'green',
  'not registered': 'red',
};

function uptime(ms: number): string {
  return ms < 60_000 ? `${Math.floor(ms / 1000)}s` : formatDuration(Math.round(ms / 60_000) * 60_000);
}

function printTable(o: Output, services: ServiceStatusView[]): void {
  // Every cell comes from a state file, a health probe's or the cluster's answer: escaped, so it cannot drive the terminal.
  const rows = services.flatMap((s) => [
    [
      s.name,
      s.state,
      s.health,
      s.handle ? (s.handle.pid !== undefined ? String(s.handle.pid) : (s.handle.containerName ?? s.handle.id.slice(0, 12))) : '-',
      s.running && s.uptimeMs !== undefined ? uptime(s.uptimeMs) : '-',
      String(s.restarts),
      s.lastHealth ? `${s.lastHealth.ok ? 'ok' : 'fail'}: ${s.lastHealth.detail}` : (s.reason ?? ''),
    ].map(clean),
    // A swarm service: one line per task, on the node it runs on, with the cluster's state and health.
    ...(s.tasks ?? []).map((t) => [`  task ${t.slot}`, t.state, t.health, `on ${t.node}`, '-', '-', t.error ?? ''].map(clean)),
  ]);
  printRows(o, ['SERVICE', 'STATE', 'HEALTH', 'PID/CONTAINER', 'UPTIME', 'RESTARTS', 'LAST HEALTH'], rows, 1);
}

/** Columns padded to their widest cell; the state column (`stateColumn`) coloured. */
function printRows(o: Output, head: string[], rows: string[][], stateColumn: number): void {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)) + 2);
  o.out(head.map((h, i) => (i === head.length - 1 ? h : pad(h, widths[i]!))).join(''));
  for (const r of rows) {
    o.out(
      r
        .map((cell, i) => {
          const text = i === r.length - 1 ? cell : pad(cell, widths[i]!);
          return i === stateColumn ? paint(o, STATE_STYLE[cell] ?? 'yellow', text) : text;
        })
        .join(''),
    );
  }
}
