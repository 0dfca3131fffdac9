import { createMemoryRuntime, type MemoryRuntime, type MemoryScript } from '../../src/runtime/memory.js';
import { realClock } from '../../src/util/clock.js';
import { describeRuntimeConformance } from './conformance.js';
import { processService } from './helpers.js';

// The in-memory runtime scripts each service by name; the target keeps the scripts.
const scripts = new Map<string, MemoryScript>();

describeRuntimeConformance('memory', {
  make: () => createMemoryRuntime({ clock: realClock, script: (service) => scripts.get(service) ?? {} }),
  service: (name, behaviour) => {
    if (behaviour.kind === 'ignore-stop-signal') scripts.set(name, { ignoresStopSignal: true });
    else if (behaviour.kind === 'exit') scripts.set(name, { exitAfterMs: 0, exitCode: behaviour.code });
    else scripts.set(name, {});
    return processService(name, { command: ['memory'], ...(behaviour.kind === 'http' ? { port: behaviour.port } : {}) });
  },
  health: (runtime) => (runtime as MemoryRuntime).health,
  logs: false,
  discoversAcrossRestarts: false,
});
