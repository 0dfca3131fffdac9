import { describe, expect, it } from 'vitest';
import { imageNeeds } from '../../src/runtime/docker-images.js';
import { busyboxService } from '../fixtures/docker-image.js';

describe('imageNeeds', () => {
  it('pulls a shared image once, under the most eager policy of the services using it', () => {
    const needs = imageNeeds([
      busyboxService({ name: 'a', image: 'x:1', pull: 'never' }),
      busyboxService({ name: 'b', image: 'x:1', pull: 'always' }),
      busyboxService({ name: 'c', image: 'y:1', pull: 'missing' }),
      busyboxService({ name: 'd', image: undefined, runtime: 'process' }),
    ]);
    expect(needs).toEqual([
      { image: 'x:1', policy: 'always', services: ['a', 'b'] },
      { image: 'y:1', policy: 'missing', services: ['c'] },
    ]);
  });
});
