import { describe, expect, it } from 'vitest';
import { CONTAINER_CONFIG_DIR, LABELS, containerName, networkOf, planContainer, stackNetworksFor, type ContainerInput } from '../../src/runtime/docker-spec.js';
import { busyboxService } from '../fixtures/docker-image.js';

function input(overrides: Partial<ContainerInput> = {}): ContainerInput {
  return {
    stack: 'demo',
    service: busyboxService({ name: 'pds', image: 'example/pds:1', command: ['node', 'index.js'] }),
    replica: 0,
    environment: { B: '2', A: '1' },
    files: [],
    configDir: '/srv/demo/config/pds',
    profileDir: '/srv/demo',
    fileDigests: {},
    ...overrides,
  };
}

describe('planContainer', () => {
  it('names containers <stack>-<service>-<n> with n 1-based, and labels them with the 0-based replica', () => {
    const plan = planContainer(input({ replica: 1 }));
    expect(plan.name).toBe('demo-pds-2');
    expect(containerName('demo', 'pds', 0)).toBe('demo-pds-1');
    expect(plan.options.Labels).toMatchObject({ [LABELS.stack]: 'demo', [LABELS.service]: 'pds', [LABELS.replica]: '1' });
    expect(plan.options.Labels?.[LABELS.configHash]).toBe(plan.configHash);
  });

  it('maps image, argv, entrypoint and a sorted environment', () => {
    const plan = planContainer(input({ service: busyboxService({ image: 'x:1', command: ['a', 'b c'], entrypoint: ['/init'] }) }));
    expect(plan.options).toMatchObject({ Image: 'x:1', Cmd: ['a', 'b c'], Entrypoint: ['/init'], Env: ['A=1', 'B=2'] });
  });

  it('runs a shell command through /bin/sh -c', () => {
    const plan = planContainer(input({ service: busyboxService({ command: ['echo $HOME && sleep 1'], shell: true }) }));
    expect(plan.options.Cmd).toEqual(['/bin/sh', '-c', 'echo $HOME && sleep 1']);
  });

  it('publishes ports on 127.0.0.1 by default, and the main port on an ephemeral loopback port', () => {
    const service = busyboxService({
      port: 3000,
      ports: [
        { container: 80, host: 8080, hostIp: '127.0.0.1', protocol: 'tcp' },
        { container: 53, host: 5353, hostIp: '0.0.0.0', protocol: 'udp' },
      ],
    });
    const plan = planContainer(input({ service }));
    expect(plan.options.ExposedPorts).toEqual({ '80/tcp': {}, '53/udp': {}, '3000/tcp': {} });
    expect(plan.options.HostConfig?.PortBindings).toEqual({
      '80/tcp': [{ HostIp: '127.0.0.1', HostPort: '8080' }],
      '53/udp': [{ HostIp: '0.0.0.0', HostPort: '5353' }],
      '3000/tcp': [{ HostIp: '127.0.0.1', HostPort: '' }],
    });
  });

  it('gives replicas after the first ephemeral host ports (one host port cannot be published twice)', () => {
    const service = busyboxService({ ports: [{ container: 80, host: 8080, hostIp: '127.0.0.1', protocol: 'tcp' }] });
    expect(planContainer(input({ service, replica: 1 })).options.HostConfig?.PortBindings).toEqual({
      '80/tcp': [{ HostIp: '127.0.0.1', HostPort: '' }],
    });
  });

  it('uses host networking without publishing anything, and the stack network with a service alias otherwise', () => {
    const host = planContainer(input({ service: busyboxService({ network: 'host', port: 3000 }) }));
    expect(host.options.HostConfig?.NetworkMode).toBe('host');
    expect(host.options.HostConfig?.PortBindings).toEqual({});
    expect(host.options.NetworkingConfig).toBeUndefined();

    const bridged = planContainer(input());
    expect(bridged.options.HostConfig?.NetworkMode).toBe('demo_default');
    expect(bridged.options.NetworkingConfig?.EndpointsConfig?.['demo_default']?.Aliases).toEqual(['pds']);
    expect(planContainer(input({ stackNetwork: 'shared' })).options.HostConfig?.NetworkMode).toBe('shared');
  });

  it('lists the stack networks to create: built-in modes excluded, named networks prefixed', () => {
    expect(networkOf('demo', { network: 'backend' })).toBe('demo_backend');
    expect(stackNetworksFor('demo', [{ network: 'host' }, {}, { network: 'backend' }, { network: 'none' }])).toEqual(['demo_backend', 'demo_default']);
    expect(stackNetworksFor('demo', [{ network: 'host' }])).toEqual([]);
  });

  it('mounts the config folder read-only at /etc/stack, and maps volumes', () => {
    const service = busyboxService({
      volumes: [
        { source: 'data', target: '/var/lib/data', readOnly: false, type: 'bind' },
        { source: 'pgdata', target: '/var/lib/pg', readOnly: false, type: 'volume' },
        { source: '', target: '/cache', readOnly: false, type: 'volume' },
        { source: '', target: '/scratch', readOnly: false, type: 'tmpfs' },
        { source: './site', target: '/www', readOnly: true, type: 'volume' },
      ],
    });
    const files = [{ hostPath: '/srv/demo/config/pds/pds.env', destination: 'pds.env', mode: 0o600 }];
    const mounts = planContainer(input({ service, files })).options.HostConfig?.Mounts ?? [];
    expect(mounts).toEqual([
      { Type: 'bind', Source: '/srv/demo/config/pds', Target: CONTAINER_CONFIG_DIR, ReadOnly: true },
      { Type: 'bind', Source: '/srv/demo/data', Target: '/var/lib/data', ReadOnly: false },
      expect.objectContaining({
        Type: 'volume',
        Source: 'demo_pgdata',
        Target: '/var/lib/pg',
        VolumeOptions: { Labels: { [LABELS.stack]: 'demo', [LABELS.volume]: 'pgdata' } },
      }),
      { Type: 'volume', Source: '', Target: '/cache', ReadOnly: false },
      { Type: 'tmpfs', Source: '', Target: '/scratch', ReadOnly: false },
      { Type: 'bind', Source: '/srv/demo/site', Target: '/www', ReadOnly: true }, // a path is a bind, as in Compose
    ]);
  });

  it('maps restart policy, resources, hardening, init and stop settings', () => {
    const service = busyboxService({
      restart: { policy: 'on-failure', maxRetries: 5, backoffMs: 100, maxBackoffMs: 1000 },
      resources: { cpus: 0.5, memory: 256 * 1024 * 1024, pids: 100 },
      security: {
        readOnlyRootFilesystem: true,
        noNewPrivileges: true,
        capDrop: ['ALL'],
        capAdd: ['NET_BIND_SERVICE'],
        user: '1000:1000',
        tmpfs: ['/tmp', '/run:size=1m'],
      },
      init: true,
      stopSignal: 'SIGINT',
      stopGracePeriodMs: 2500,
    });
    const { options } = planContainer(input({ service }));
    expect(options).toMatchObject({ User: '1000:1000', StopSignal: 'SIGINT', StopTimeout: 3 });
    expect(options.HostConfig).toMatchObject({
      RestartPolicy: { Name: 'on-failure', MaximumRetryCount: 5 },
      NanoCpus: 500_000_000,
      Memory: 268_435_456,
      PidsLimit: 100,
      ReadonlyRootfs: true,
      SecurityOpt: ['no-new-privileges:true'],
      CapDrop: ['ALL'],
      CapAdd: ['NET_BIND_SERVICE'],
      Tmpfs: { '/tmp': '', '/run': 'size=1m' },
      Init: true,
    });
    expect(
      planContainer(input({ service: busyboxService({ restart: { policy: 'unless-stopped', maxRetries: 0, backoffMs: 0, maxBackoffMs: 0 } }) })).options
        .HostConfig?.RestartPolicy,
    ).toEqual({ Name: 'unless-stopped' });
  });

  it('keeps the config hash stable for the same input, whatever the key order', () => {
    const a = planContainer(input({ environment: { A: '1', B: '2' } }));
    const b = planContainer(input({ environment: { B: '2', A: '1' } }));
    expect(a.configHash).toBe(b.configHash);
  });

  it('changes the config hash when anything that defines the container changes', () => {
    const base = planContainer(input()).configHash;
    expect(planContainer(input({ environment: { A: '1', B: '3' } })).configHash).not.toBe(base);
    expect(planContainer(input({ fileDigests: { 'pds.env': 'abc' } })).configHash).not.toBe(base);
    expect(planContainer(input({ imageId: 'sha256:1' })).configHash).not.toBe(base);
    expect(planContainer(input({ service: busyboxService({ name: 'pds', image: 'example/pds:2', command: ['node', 'index.js'] }) })).configHash).not.toBe(base);
  });

  it("runs the image's HEALTHCHECK at the profile's interval when that is shorter (docker strategy)", () => {
    const docker = (intervalMs: number) => busyboxService({ healthCheck: { strategy: 'docker', intervalMs, timeoutMs: 1000, retries: 3, startPeriodMs: 0 } });
    const imageTest = { Test: ['CMD', 'true'] };
    expect(planContainer(input({ service: docker(200), imageHealthcheck: imageTest })).options.Healthcheck).toEqual({ Interval: 200_000_000 });
    expect(planContainer(input({ service: docker(5000), imageHealthcheck: { ...imageTest, Interval: 1e9 } })).options.Healthcheck).toBeUndefined();
    expect(planContainer(input({ service: docker(200) })).options.Healthcheck).toBeUndefined(); // the image has none
    const http = busyboxService({ healthCheck: { strategy: 'http', endpoint: '/', intervalMs: 200, timeoutMs: 1000, retries: 3, startPeriodMs: 0 } });
    expect(planContainer(input({ service: http, imageHealthcheck: imageTest })).options.Healthcheck).toBeUndefined();
  });

  it('refuses a service without an image', () => {
    expect(() => planContainer(input({ service: busyboxService({ image: undefined }) }))).toThrow(/has no image/);
  });
});
