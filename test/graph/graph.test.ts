import { describe, expect, it } from 'vitest';
import { buildGraph } from '../../src/graph/graph.js';
import { planStack } from '../../src/plan/plan.js';
import { renderGraph } from '../../src/plan/render.js';
import { mkDeploymentProfile, mkDependencyGraph } from '../../src/profile/api.js';
import type { RawProfile } from '../../src/profile/schema.js';
import { InvalidInputError } from '../../src/errors.js';

type Dep = string | { name: string; type: 'required' | 'optional' | 'soft' | 'circular' };
function profile(services: Record<string, Dep[] | { deps?: Dep[]; enable?: boolean; kind?: 'task' }>): RawProfile {
  return {
    name: 't',
    services: Object.fromEntries(
      Object.entries(services).map(([n, s]) => {
        const spec = Array.isArray(s) ? { deps: s } : s;
        return [
          n,
          { command: [n], dependencies: spec.deps ?? [], ...(spec.enable === false ? { enable: false } : {}), ...(spec.kind ? { kind: spec.kind } : {}) },
        ];
      }),
    ),
  };
}
const plan = (raw: RawProfile, services?: string[]) => {
  const p = mkDeploymentProfile(raw);
  return planStack(p, buildGraph(p).graph, services ? { services } : {});
};

describe('plan', () => {
  it('orders waves by longest path and reports typed edges with their gates', () => {
    const result = plan(profile({ db: [], cache: [], api: ['db', { name: 'cache', type: 'optional' }], web: [{ name: 'api', type: 'soft' }] }));
    expect(result.order).toEqual([['cache', 'db'], ['api'], ['web']]);
    expect(result.edges.map(({ from, to, type, gate }) => ({ from, to, type, gate }))).toEqual([
      { from: 'api', to: 'db', type: 'required', gate: 'healthy' },
      { from: 'api', to: 'cache', type: 'optional', gate: 'settled' },
      { from: 'web', to: 'api', type: 'soft', gate: 'started' },
    ]);
    expect(result.criticalChain).toEqual(['db', 'api', 'web']);
  });

  it('puts a circular group in one wave, after its outside dependencies', () => {
    const c = (name: string) => ({ name, type: 'circular' as const });
    const result = plan(profile({ store: [], a: [c('b'), 'store'], b: [c('c')], c: [c('a')], client: ['b'] }));
    expect(result.groups).toEqual([['a', 'b', 'c']]);
    expect(result.order).toEqual([['store'], ['a', 'b', 'c'], ['client']]);
    expect(result.services.find((s) => s.name === 'b')?.group).toBe(0);
  });

  it('blocks dependents of disabled services transitively; optional ones still run', () => {
    // Validation rejects a required dependency on a disabled service (disabled_dependency); the
    // planner still blocks such dependents of a profile that was changed after validation.
    expect(() => plan(profile({ db: { enable: false }, api: ['db'] }))).toThrow(InvalidInputError);
    const p = mkDeploymentProfile(profile({ db: [], api: ['db'], web: ['api'], side: [{ name: 'db', type: 'optional' }] }));
    p.services.db!.enable = false;
    const result = planStack(p, buildGraph(p).graph, {});
    expect(result.blocked).toEqual([
      { service: 'api', reason: "requires 'db', which is disabled" },
      { service: 'web', reason: "requires 'api', which is blocked" },
    ]);
    expect(result.skipped).toEqual([{ service: 'db', reason: 'disabled (enable: false)' }]);
    expect(result.order).toEqual([['side']]);
  });

  it('selects a service and what it depends on', () => {
    const result = plan(profile({ db: [], api: ['db'], web: ['api'], other: [] }), ['api']);
    expect(result.order).toEqual([['db'], ['api']]);
    expect(result.skipped.map((s) => s.service).sort()).toEqual(['other', 'web']);
  });

  it('handles a 5,000-deep chain without recursion', () => {
    const services: Record<string, Dep[]> = { s0: [] };
    for (let i = 1; i < 5000; i++) services[`s${i}`] = [`s${i - 1}`];
    const result = plan(profile(services));
    expect(result.order).toHaveLength(5000);
    expect(result.criticalChain).toHaveLength(5000);
  });
});

describe('cycles', () => {
  it('names the whole path of a cycle with a non-circular edge', () => {
    expect(() => mkDependencyGraph(mkDeploymentProfileUnchecked({ a: ['b'], b: ['c'], c: ['a'] }))).toThrowError(
      /Circular dependency detected: (a → b → c → a|b → c → a → b|c → a → b → c)/,
    );
  });

  it('rejects a mixed cycle even when most edges are circular', () => {
    const { problems } = buildGraph(mkDeploymentProfileUnchecked({ a: [{ name: 'b', type: 'circular' }], b: ['a'] }));
    expect(problems).toHaveLength(1);
    expect(problems[0]?.message).toMatch(/^Circular dependency detected: b → a → b/);
  });

  it('rejects self-dependencies', () => {
    const { problems } = buildGraph(mkDeploymentProfileUnchecked({ a: ['a'] }));
    expect(problems[0]?.message).toBe('Circular dependency detected: a → a');
  });

  it('mkDependencyGraph throws InvalidInputError for unknown required dependencies', () => {
    expect(() => mkDependencyGraph(mkDeploymentProfileUnchecked({ a: ['nope'] }))).toThrow(InvalidInputError);
  });
});

describe('render', () => {
  const p = mkDeploymentProfile(profile({ db: [], api: ['db', { name: 'cache', type: 'optional' }], cache: [], web: [{ name: 'api', type: 'soft' }] }));
  const { graph } = buildGraph(p);
  const thePlan = planStack(p, graph);
  it('dot: edge types visibly distinct', () => {
    const dot = renderGraph(graph, thePlan, 'dot');
    expect(dot).toMatch(/^digraph "t" \{/);
    expect(dot).toContain('"api" -> "db" [style=solid');
    expect(dot).toContain('"api" -> "cache" [style=dashed');
    expect(dot).toContain('"web" -> "api" [style=dotted');
  });
  it('mermaid and json', () => {
    const mermaid = renderGraph(graph, thePlan, 'mermaid');
    expect(mermaid).toContain('n_api -->|required| n_db');
    expect(mermaid).toContain('n_api -.->|optional| n_cache');
    const json = JSON.parse(renderGraph(graph, thePlan, 'json'));
    expect(json.edges).toContainEqual({ from: 'web', to: 'api', type: 'soft', gate: 'started' });
  });
});

/** A profile whose graph may be invalid: build services directly, bypassing validation. */
function mkDeploymentProfileUnchecked(services: Record<string, Dep[]>) {
  const base = mkDeploymentProfile(profile(Object.fromEntries(Object.keys(services).map((n) => [n, []]))));
  for (const [n, deps] of Object.entries(services)) {
    base.services[n]!.dependencies = deps.map((d, index) => (typeof d === 'string' ? { name: d, type: 'required' as const, index } : { ...d, index }));
  }
  return base;
}
