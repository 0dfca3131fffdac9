/**
 * The process runtime's definition, listed in `registry.ts` (copy this file to add a runtime).
 * The implementation (`src/runtime/process.ts`, its `fromProfile`) loads when the runtime is
 * created. It has no profile section: everything it needs is in the services.
 */
import type { RuntimeDefinition } from './registry.js';

export const processRuntime: RuntimeDefinition<'process', object> = {
  name: 'process',
  description: 'Local processes in their own process groups, with pid files and logs under the state folder',
  capabilities: { images: false, hostWorkingDir: true },
  describeRun: (service) => service.command?.[0],
};
