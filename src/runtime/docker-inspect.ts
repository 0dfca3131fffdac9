/**
 * Reading a container back: the handle, exit and health status a runtime reports, from Docker's
 * inspect data. One function per question, so `start` and `discover` build the same handle.
 */
import type Dockerode from 'dockerode';
import type { ExitInfo, InstanceStatus, ServiceHandle } from './types.js';
import { LABELS } from './docker-spec.js';

export function exitInfo(code: number | null): ExitInfo {
  // Docker reports an exit status only; with an init process a signal shows as 128 + n.
  return { code, signal: null };
}

export function healthOf(info: Dockerode.ContainerInspectInfo): NonNullable<InstanceStatus['health']> {
  const status = info.State.Health?.Status;
  return status === 'starting' || status === 'healthy' || status === 'unhealthy' ? status : 'none';
}

/** A handle from the container itself (labels, ports): the same whether we started it or found it. */
export function handleOf(info: Dockerode.ContainerInspectInfo): ServiceHandle {
  const labels = info.Config.Labels ?? {};
  return {
    runtime: 'docker',
    stack: labels[LABELS.stack] ?? '',
    service: labels[LABELS.service] ?? '',
    replica: Number(labels[LABELS.replica] ?? 0),
    id: info.Id,
    containerName: info.Name.replace(/^\//, ''),
    startedAt: info.State.StartedAt,
    publishedPorts: publishedPortsOf(info),
    ...(labels[LABELS.host] ? { host: labels[LABELS.host] } : {}),
  };
}

type PortMap = Record<string, { HostIp?: string; HostPort?: string }[] | null>;

function publishedPortsOf(info: Dockerode.ContainerInspectInfo): Record<string, { host: string; port: number }> {
  const out: Record<string, { host: string; port: number }> = {};
  const ports = (info.NetworkSettings.Ports ?? {}) as PortMap;
  for (const [key, bindings] of Object.entries(ports)) {
    const [containerPort, protocol] = key.split('/');
    if (!containerPort || !bindings) continue;
    if (out[containerPort] && protocol !== 'tcp') continue; // prefer tcp when a port has both
    // Docker lists an IPv4 and an IPv6 binding for wildcard publishes; loopback IPv4 reaches either.
    const binding = bindings.find((b) => b.HostPort && !b.HostIp?.includes(':')) ?? bindings.find((b) => b.HostPort);
    if (!binding?.HostPort) continue;
    out[containerPort] = { host: loopbackFor(binding.HostIp), port: Number(binding.HostPort) };
  }
  return out;
}

/** A wildcard publish is reachable on loopback; a specific address only on that address. */
function loopbackFor(hostIp: string | undefined): string {
  if (!hostIp || hostIp === '0.0.0.0' || hostIp === '::') return '127.0.0.1';
  return hostIp;
}
