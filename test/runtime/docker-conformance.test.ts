import Docker from 'dockerode';
import { createDockerRuntime } from '../../src/runtime/docker.js';
import { LABELS } from '../../src/runtime/docker-spec.js';
import { busyboxService, ensureBusyboxImage, httpdCommand } from '../fixtures/docker-image.js';
import { describeRuntimeConformance, type Behaviour } from './conformance.js';

function command(behaviour: Behaviour): string[] {
  switch (behaviour.kind) {
    case 'http':
      return httpdCommand(behaviour.port);
    case 'print':
      return ['sh', '-c', `${behaviour.lines.map((l) => `echo '${l}'`).join('; ')}; exec sleep 300`];
    case 'ignore-stop-signal':
      return ['sh', '-c', 'trap "" TERM; while :; do sleep 1; done'];
    case 'exit':
      return ['sh', '-c', `exit ${behaviour.code}`];
  }
}

const docker = new Docker();

describeRuntimeConformance('docker', {
  setup: async () => {
    await ensureBusyboxImage(); // built locally; never pulled
  },
  make: () => createDockerRuntime(),
  // Host networking: the ready endpoint is on 127.0.0.1 as for a process.
  service: (name, behaviour) =>
    busyboxService({
      name,
      network: 'host',
      command: command(behaviour),
      ...(behaviour.kind === 'http' ? { port: behaviour.port } : {}),
      ...(behaviour.kind === 'exit' ? { kind: 'task' } : {}),
    }),
  cleanup: async (stack) => {
    for (const c of await docker.listContainers({ all: true, filters: { label: [`${LABELS.stack}=${stack}`] } })) {
      await docker
        .getContainer(c.Id)
        .remove({ force: true, v: true })
        .catch(() => undefined);
    }
  },
  waitMs: 60_000,
});
