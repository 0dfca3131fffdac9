import { fileURLToPath } from 'node:url';
import { createProcessRuntime } from '../../src/runtime/process.js';
import { describeRuntimeConformance, type Behaviour } from './conformance.js';
import { processService } from './helpers.js';

const fixture = fileURLToPath(new URL('../fixtures/http-service.mjs', import.meta.url));

function command(behaviour: Behaviour): string[] {
  switch (behaviour.kind) {
    case 'http':
      return [process.execPath, fixture, `--port=${behaviour.port}`];
    case 'print':
      return ['sh', '-c', `${behaviour.lines.map((l) => `echo '${l}'`).join('; ')}; exec sleep 300`];
    case 'ignore-stop-signal':
      return ['sh', '-c', 'trap "" TERM; while :; do sleep 0.2; done'];
    case 'exit':
      return ['sh', '-c', `exit ${behaviour.code}`];
  }
}

describeRuntimeConformance('process', {
  make: ({ stateDir }) => createProcessRuntime({ stateDirFor: () => stateDir }),
  service: (name, behaviour) =>
    processService(name, {
      command: command(behaviour),
      kind: behaviour.kind === 'exit' ? 'task' : 'service',
      ...(behaviour.kind === 'http' ? { port: behaviour.port } : {}),
    }),
});
