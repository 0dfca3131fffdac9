import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { FAST_VALIDATOR_FILE } from '../../src/profile/fast-check.js';
import { schemas } from '../../src/profile/schema.js';

/**
 * The build compiles the JSON Schema into a zod-free validator used as the fast path. It must
 * never accept what zod rejects (and should accept what zod accepts, or the fast path is useless).
 */
describe('compiled fast-path validator agrees with zod', () => {
  const cases: unknown[] = [
    { services: {} },
    { services: { a: { command: ['a'], port: 80 } } },
    { services: { a: { command: ['a'], port: 70000 } } },
    { services: { a: { command: ['a'], prot: 80 } } },
    { services: { a: { command: [] } } },
    { services: { a: { image: 'x', healthCheck: { strategy: 'http', endpoint: 'no-slash' } } } },
    { services: { a: { image: 'x', healthCheck: { strategy: 'http', endpoint: '/ok', interval: '500ms' } } } },
    { services: { a: { image: 'x', healthCheck: { strategy: 'http', interval: '-5s' } } } },
    { services: { a: { image: 'x', healthCheck: { strategy: 'http', interval: -5 } } } },
    { services: { a: { image: 'x', dependencies: ['b', { name: 'c', type: 'soft' }] } } },
    { services: { a: { image: 'x', dependencies: [{ name: 'c', type: 'sof' }] } } },
    { services: { a: { image: 'x', dependencies: [5] } } },
    { services: { a: { image: 'x', ports: ['127.0.0.1:8080:80', 53, '53/udp', { container: 1 }] } } },
    { services: { a: { image: 'x', ports: ['nope'] } } },
    { services: { a: { image: 'x', replicas: 0 } } },
    { services: { a: { image: 'x', replicas: 1.5 } } },
    { services: { a: { image: 'x', stopSignal: 'TERM' } } },
    { services: { a: { image: 'x', resources: { memory: '512m' } } } },
    { services: { a: { image: 'x', resources: { memory: 'lots' } } } },
    { services: { a: { image: 'x', templates: [{ destination: 'a.env', data: { A: '1' }, mode: '0600' }] } } },
    { services: { a: { image: 'x', templates: [{ destination: '', data: {} }] } } },
    { variables: { x: 1, y: { type: 'secret', generate: {} }, z: { type: 'weird' } }, services: {} },
    { discovery: { backends: [] }, services: {} },
    { discovery: { backend: 'zookeeper' }, services: {} },
    { name: 'x', services: { a: { image: 'x' } }, extra: true },
    { services: 'nope' },
    {},
  ];
  it.skipIf(!existsSync(FAST_VALIDATOR_FILE))('on valid and invalid profiles alike', () => {
    const fast = createRequire(import.meta.url)(FAST_VALIDATOR_FILE) as (v: unknown) => boolean;
    const { profileSchema } = schemas();
    for (const c of cases) expect(fast(c), JSON.stringify(c)).toBe(profileSchema.safeParse(c).success);
  });
});
