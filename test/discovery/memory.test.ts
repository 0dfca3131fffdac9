import { createMemoryBackend } from '../../src/discovery/memory.js';
import { describeBackendConformance } from './conformance.js';

describeBackendConformance('memory', {
  make: async ({ ttlMs }) => createMemoryBackend({ ttlMs }),
});
