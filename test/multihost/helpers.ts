/**
 * What the multi-host end-to-end tests share: a tiny service program each host runs (written into
 * its folder), profiles written to every host, and the `stack up --json` event stream of an agent.
 *
 * The service (`svc.cjs`) logs `<what> <epoch ms> <pid>` lines to `$SVC_LOG` (`start` when the
 * process begins, `listening` once it accepts connections, `stop` on SIGTERM), writes its pid to
 * `$SVC_PID`, and answers `/config` with the files under `$STACK_CONFIG_DIR` (what `stack`
 * rendered for it) and anything else with `<name>@<hostname>`. Order across hosts is proven from
 * these lines, the services' own record of when they ran.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { HostProcess, Hosts } from '../fixtures/hosts.js';

export const SERVICE_JS = `const fs = require('node:fs');
const path = require('node:path');
const os = require('node:os');
const log = (what) => fs.appendFileSync(process.env.SVC_LOG, what + ' ' + (performance.timeOrigin + performance.now()).toFixed(3) + ' ' + process.pid + '\\n');
log('start');
fs.writeFileSync(process.env.SVC_PID, String(process.pid));
const configs = () => {
  const dir = process.env.STACK_CONFIG_DIR;
  if (!dir || !fs.existsSync(dir)) return '{}';
  return JSON.stringify(Object.fromEntries(fs.readdirSync(dir).map((f) => [f, fs.readFileSync(path.join(dir, f), 'utf8')])));
};
require('node:http')
  .createServer((q, r) => r.end(q.url === '/config' ? configs() : process.env.SVC + '@' + os.hostname()))
  .listen(Number(process.env.PORT), process.env.HOST, () => log('listening'));
process.on('SIGTERM', () => { log('stop'); process.exit(0); });
`;

/** One line of a service's log. */
export interface LogLine {
  what: string;
  at: number;
  pid: number;
}

/** A service of the test profiles: `svc.cjs` on `port`, bound to `address`, health-checked over HTTP; its log and pid file in its host's folder (the working directory). */
export function service(host: string, name: string, port: number, address: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    host,
    command: [process.execPath, 'svc.cjs'],
    port,
    environment: { SVC: name, PORT: String(port), HOST: address, SVC_LOG: `${name}.log`, SVC_PID: `${name}.pid` },
    healthCheck: { strategy: 'http', endpoint: '/health', interval: '200ms', timeout: '1s', retries: 0 },
    stopGracePeriod: '2s',
    ...extra,
  };
}

/** Write `profile` as `<folder>/stack.json`, and the service program beside it, into every host's folder; returns each host's path of that folder. */
export async function writeEverywhere(hosts: Hosts, folder: string, profile: Record<string, unknown>): Promise<(host: string) => string> {
  const at = (host: string) => path.join(hosts.dir(host), folder);
  for (const name of hosts.names) {
    await mkdir(at(name), { recursive: true });
    await writeFile(path.join(at(name), 'stack.json'), JSON.stringify(profile, null, 2));
    await writeFile(path.join(at(name), 'svc.cjs'), SERVICE_JS);
  }
  return at;
}

/** The lines of a service's log in a folder (none yet: empty). */
export async function serviceLog(folder: string, name: string): Promise<LogLine[]> {
  const text = await readFile(path.join(folder, `${name}.log`), 'utf8').catch(() => '');
  return text
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      const [what, at, pid] = l.split(' ');
      return { what: what!, at: Number(at), pid: Number(pid) };
    });
}

/** The `hosts:` section for the fixture's hosts. */
export function hostsSection(hosts: Hosts): Record<string, { address: string }> {
  return Object.fromEntries(hosts.names.map((n) => [n, { address: hosts.address(n) }]));
}

/** An event of `stack up --json`. */
export interface UpEvent {
  type: string;
  service?: string;
  state?: string;
  previous?: string;
  reason?: string;
  message?: string;
  phase?: string;
  pid?: number;
  [key: string]: unknown;
}

/** Every JSON event an agent printed so far. */
export function events(up: HostProcess): UpEvent[] {
  return up.lines().flatMap((l) => {
    try {
      return [JSON.parse(l) as UpEvent];
    } catch {
      return [];
    }
  });
}

/** Match a state event of `service` entering `state`. */
export const stateOf =
  (service: string, state: string) =>
  (e: UpEvent): boolean =>
    e.type === 'state' && e.service === service && e.state === state;

/**
 * The first event matching `match` after the first `after` events, waiting for it (rejecting
 * with the agent's output if it exits or `timeoutMs` passes first). Returns it and its index.
 */
export async function nextEvent(up: HostProcess, match: (e: UpEvent) => boolean, after = 0, timeoutMs = 30_000): Promise<{ event: UpEvent; index: number }> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const all = events(up);
    const index = all.findIndex((e, i) => i >= after && match(e));
    if (index >= 0) return { event: all[index]!, index };
    if (!up.running || Date.now() > deadline)
      throw new Error(
        `${up.running ? 'timed out' : 'agent exited'} waiting for an event on ${up.host}\nstdout: ${up.stdout.slice(-3000)}\nstderr: ${up.stderr.slice(-2000)}`,
      );
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Stop an agent the way Ctrl-C does (SIGTERM: it stops its own services, dependents first) and say how it ended. */
export async function stopAgent(up: HostProcess): Promise<number | null> {
  const { code } = await up.stop(15_000);
  return code;
}
