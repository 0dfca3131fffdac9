/**
 * The rules of a stack that spans hosts (`hosts:`, `host:`, `external:`, the coordination
 * strategy): each a small function returning every problem it finds, run with the others by
 * `checkProfile` (rules.ts).
 */
import net from 'node:net';
import { canElect, electionBackends } from '../discovery/election.js';
import { DISCOVERY_DRIVERS } from '../discovery/registry.js';
import { isLoopbackHost } from '../health/loopback.js';
import { dnsLabelProblem } from '../util/names.js';
import { didYouMean } from '../util/suggest.js';
import type { RawProblem } from './issues.js';
import type { RawProfile } from './schema.js';
import { ALL_HOSTS, type Profile, type ServiceSpec } from './types.js';

type Rule = (profile: Profile, raw: RawProfile) => RawProblem[];

const svcPath = (s: ServiceSpec, ...rest: (string | number)[]) => ['services', s.name, ...rest];

/** The keys an external service may have: it is run elsewhere, so nothing about running it applies. */
const EXTERNAL_KEYS = new Set(['external', 'stack', 'description', 'enable', 'scheme']);

/** Backends where every host can register and see the others, by name (their definitions say `shared`). */
export const SHARED_BACKENDS: readonly string[] = DISCOVERY_DRIVERS.filter((d) => d.shared && d.capabilities.register).map((d) => d.name);

/**
 * leader-follower: the hosts' supervisors campaign through discovery, so it needs hosts and a
 * backend with an election; `singleton:` means something only there.
 */
const strategy: Rule = (profile, raw) => {
  if (profile.coordination.strategy !== 'leader-follower') return [];
  const out: RawProblem[] = [];
  const at = raw.coordination?.strategy !== undefined ? ['coordination', 'strategy'] : ['coordination'];
  if (Object.keys(profile.hosts).length === 0)
    out.push({
      code: 'leader_follower',
      path: at,
      message: 'leader-follower needs hosts: (the machines whose supervisors campaign, each running `stack up --host NAME`)',
    });
  const backends = profile.discovery.backends;
  if (!backends.some(canElect))
    out.push({
      code: 'leader_follower',
      path: raw.discovery ? ['discovery'] : at,
      message: `leader-follower needs a backend that elects: ${electionBackends().join(', ')} (this profile's discovery: ${backends.join(', ') || 'none'})`,
    });
  return out;
};

/** A singleton runs on whichever host leads: one instance, reachable from every host, placed by the election. */
const singletons: Rule = (profile, raw) => {
  const out: RawProblem[] = [];
  const strategyName = profile.coordination.strategy;
  for (const svc of Object.values(profile.services)) {
    if (!svc.singleton || svc.external) continue;
    const written = (raw.services[svc.name] ?? {}) as Record<string, unknown>;
    if (strategyName !== 'leader-follower') {
      out.push({
        code: 'singleton',
        path: svcPath(svc, 'singleton'),
        message: `singleton: true (one instance, on the elected leader's host) needs coordination.strategy: leader-follower (this profile uses ${strategyName})`,
      });
      continue;
    }
    if (written.host !== undefined)
      out.push({ code: 'singleton', path: svcPath(svc, 'host'), message: 'a singleton runs on whichever host leads: remove host:' });
    if (svc.replicas > 1) out.push({ code: 'singleton', path: svcPath(svc, 'replicas'), message: 'a singleton runs one instance: remove replicas:' });
    if (!svc.addressFromHost && isLoopbackHost(svc.address))
      out.push({
        code: 'singleton',
        path: svcPath(svc, 'address'),
        message: `a singleton moves between hosts, and ${svc.address} is loopback: dependents on other hosts could not reach it (remove address: to use the leader's host's)`,
      });
  }
  return out;
};

/** `hosts:` itself: names, addresses others can reach, engines. */
const hostList: Rule = (profile) => {
  const out: RawProblem[] = [];
  const seen = new Map<string, string>();
  for (const host of Object.values(profile.hosts)) {
    const at = ['hosts', host.name];
    const nameProblem = host.name === ALL_HOSTS ? 'is reserved (host: all means every host)' : dnsLabelProblem(host.name);
    if (nameProblem)
      out.push({ code: 'invalid_host', path: at, atKey: true, message: `host name '${host.name}' ${nameProblem}; host names must be DNS labels` });
    const address = host.address;
    if (net.isIP(address) === 0 && !/^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$/.test(address)) {
      out.push({ code: 'invalid_host', path: [...at, 'address'], message: `${JSON.stringify(address)} is not an IP address or a host name` });
    } else if (isLoopbackHost(address) || address === '0.0.0.0' || address === '::') {
      out.push({
        code: 'invalid_host',
        path: [...at, 'address'],
        message: `${address} is not an address other hosts can reach: give the address this host has on the network the hosts share`,
      });
    } else if (seen.has(address)) {
      out.push({ code: 'invalid_host', path: [...at, 'address'], message: `${address} is also the address of host '${seen.get(address)}'` });
    }
    seen.set(address, host.name);
    if (host.docker !== undefined && !/^(unix:\/\/\/|tcp:\/\/[^/]+:\d+\/?$|ssh:\/\/[^/]+)/.test(host.docker)) {
      out.push({
        code: 'invalid_host',
        path: [...at, 'docker'],
        message: `${JSON.stringify(host.docker)} is not a Docker engine address: unix:///path/docker.sock, tcp://host:port or ssh://user@host`,
      });
    }
  }
  return out;
};

/** Every service runs somewhere: on a declared host, or on every host (mesh). */
const placement: Rule = (profile) => {
  const out: RawProblem[] = [];
  const names = Object.keys(profile.hosts);
  const mesh = profile.coordination.strategy === 'mesh';
  for (const svc of Object.values(profile.services)) {
    if (!svc.enable || svc.external || (svc.singleton && profile.coordination.strategy === 'leader-follower')) continue;
    if (names.length === 0) {
      if (svc.host !== undefined)
        out.push({
          code: 'unknown_host',
          path: svcPath(svc, 'host'),
          message: `names host '${svc.host}', but the profile declares no hosts: add a hosts: section, or remove host:`,
        });
      continue;
    }
    if (svc.host === undefined) {
      out.push({
        code: 'missing_host',
        path: svcPath(svc),
        message: `the profile spans hosts (${names.join(', ')}): say which this service runs on with host:${mesh ? ', or host: all for every host' : ''}`,
      });
    } else if (svc.host === ALL_HOSTS) {
      if (!mesh)
        out.push({
          code: 'unknown_host',
          path: svcPath(svc, 'host'),
          message: `host: all (an instance on every host) needs coordination.strategy: mesh (this profile uses ${profile.coordination.strategy})`,
        });
    } else if (!profile.hosts[svc.host]) {
      out.push({
        code: 'unknown_host',
        path: svcPath(svc, 'host'),
        message: `names host '${svc.host}', which is not declared under hosts: (${names.join(', ')})${didYouMean(svc.host, names)}`,
      });
    }
  }
  return out;
};

/** Several hosts meet only in discovery: a backend of one machine cannot carry them. */
const sharedDiscovery: Rule = (profile, raw) => {
  if (Object.keys(profile.hosts).length === 0) return [];
  const backends = profile.discovery.backends;
  const local = backends.filter((b) => !DISCOVERY_DRIVERS.find((d) => d.name === b)?.shared);
  const why =
    local.length > 0
      ? `${local.map((b) => `'${b}'`).join(', ')} ${local.length > 1 ? 'are' : 'is'} seen on one machine only`
      : !backends.some((b) => SHARED_BACKENDS.includes(b))
        ? `${backends.map((b) => `'${b}'`).join(', ')} cannot register`
        : undefined;
  if (why === undefined) return [];
  const message = `a stack across hosts (${profile.coordination.strategy}) meets in discovery, and ${why}: use ${SHARED_BACKENDS.join(', ')}`;
  return [{ code: 'local_discovery', path: raw.discovery ? ['discovery'] : ['hosts'], message }];
};

/** An external service is run elsewhere: it has a name, maybe its stack, and nothing to run. */
const externals: Rule = (profile, raw) => {
  const out: RawProblem[] = [];
  for (const svc of Object.values(profile.services)) {
    const written = (raw.services[svc.name] ?? {}) as Record<string, unknown>;
    if (svc.external) {
      for (const key of Object.keys(written)) {
        if (!EXTERNAL_KEYS.has(key))
          out.push({
            code: 'external_service',
            path: svcPath(svc, key),
            atKey: true,
            message: `'${key}' does not apply to an external service (it runs elsewhere; only stack, description, enable and scheme do)`,
          });
      }
      const stackProblem = svc.external.stack !== undefined ? dnsLabelProblem(svc.external.stack) : undefined;
      if (stackProblem) out.push({ code: 'external_service', path: svcPath(svc, 'stack'), message: `stack name '${svc.external.stack}' ${stackProblem}` });
    } else if (written.stack !== undefined) {
      out.push({
        code: 'external_service',
        path: svcPath(svc, 'stack'),
        message: 'stack: names the stack of an external service: add external: true, or remove stack:',
      });
    }
  }
  return out;
};

/** A service bound to loopback on its host cannot be reached by a dependent on another host. */
const reachable: Rule = (profile) => {
  const out: RawProblem[] = [];
  for (const svc of Object.values(profile.services)) {
    const runsOn = svc.singleton && svc.host === undefined ? 'whichever host leads (a singleton)' : svc.host === undefined ? undefined : `'${svc.host}'`;
    if (!svc.enable || runsOn === undefined) continue;
    for (const dep of svc.dependencies) {
      const target = profile.services[dep.name];
      if (!target?.enable || target.host === undefined || (target.host === svc.host && !svc.singleton) || target.host === ALL_HOSTS) continue;
      if (!profile.hosts[target.host]) continue; // an undeclared host: `placement` says so
      if (isLoopbackHost(target.address)) {
        out.push({
          code: 'unreachable_dependency',
          path: svcPath(svc, 'dependencies', dep.index),
          message: `'${dep.name}' is bound to loopback (${target.address}) on host '${target.host}', and this service runs on ${runsOn}: it cannot reach it (remove ${dep.name}'s address: to use its host's)`,
        });
      }
    }
  }
  return out;
};

export const HOST_RULES: readonly Rule[] = [strategy, singletons, hostList, placement, sharedDiscovery, externals, reachable];
