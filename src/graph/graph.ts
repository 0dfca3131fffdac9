/**
 * The dependency graph: typed edges, circular groups, and cycle detection that names the whole
 * path. Every algorithm here is iterative, so a 5,000-deep chain cannot overflow the stack.
 */
import type { Problem } from '../errors.js';
import { didYouMean } from '../util/suggest.js';
import { GATE_OF, type DependencyGraph, type GraphEdge, type GraphService } from './types.js';

export interface GraphProblem extends Omit<Problem, 'path'> {
  path: (string | number)[];
}

export interface BuiltGraph<S extends GraphService = GraphService> {
  graph: DependencyGraph<S>;
  problems: GraphProblem[];
}

/** What the graph is built from: a profile in normal use (its services are `ServiceSpec`s). */
export interface GraphInput<S extends GraphService = GraphService> {
  services: Record<string, S>;
}

export function buildGraph<S extends GraphService>(profile: GraphInput<S>): BuiltGraph<S> {
  // Lenient inputs (validation of a profile the schema rejected) only read `problems`.
  const services = new Map(Object.entries(profile.services));
  const names = [...services.keys()];
  const problems: GraphProblem[] = [];
  const edges: GraphEdge[] = [];
  for (const svc of services.values()) {
    const seen = new Set<string>();
    for (const dep of svc.dependencies) {
      const at = ['services', svc.name, 'dependencies', dep.index];
      if (seen.has(dep.name)) {
        problems.push({ code: 'duplicate_dependency', path: at, message: `'${dep.name}' is listed twice`, severity: 'warning' });
        continue;
      }
      seen.add(dep.name);
      if (dep.name === svc.name) {
        problems.push({ code: 'cycle', path: at, message: `Circular dependency detected: ${svc.name} → ${svc.name}` });
        continue;
      }
      if (!services.has(dep.name)) {
        const hint = didYouMean(dep.name, names);
        if (dep.type === 'required' || dep.type === 'circular') {
          problems.push({ code: 'unknown_dependency', path: at, message: `depends on unknown service '${dep.name}'${hint}` });
        } else {
          problems.push({
            code: 'unknown_dependency',
            path: at,
            severity: 'warning',
            message: `${dep.type} dependency '${dep.name}' is not in the profile; it will be treated as absent${hint}`,
          });
        }
        continue;
      }
      edges.push({ from: svc.name, to: dep.name, type: dep.type, gate: GATE_OF[dep.type], index: dep.index });
    }
  }
  const out = new Map<string, GraphEdge[]>(names.map((n) => [n, []]));
  const inc = new Map<string, GraphEdge[]>(names.map((n) => [n, []]));
  for (const e of edges) {
    out.get(e.from)!.push(e);
    inc.get(e.to)!.push(e);
  }
  const { groups, cycleProblems } = findGroups(names, out);
  problems.push(...cycleProblems);
  const groupIndex = new Map<string, number>();
  groups.forEach((g, i) => g.forEach((n) => groupIndex.set(n, i)));
  return {
    graph: {
      services,
      edges,
      dependenciesOf: (n) => out.get(n) ?? [],
      dependentsOf: (n) => inc.get(n) ?? [],
      groups,
      groupOf: (n) => groupIndex.get(n),
    },
    problems,
  };
}

/** Strongly connected components (Tarjan, iterative), in discovery order. */
export function stronglyConnected(names: string[], out: Map<string, GraphEdge[]>): string[][] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const onStack = new Set<string>();
  const stack: string[] = [];
  const result: string[][] = [];
  let counter = 0;
  for (const root of names) {
    if (index.has(root)) continue;
    const work: { node: string; edge: number }[] = [{ node: root, edge: 0 }];
    index.set(root, counter);
    low.set(root, counter++);
    stack.push(root);
    onStack.add(root);
    while (work.length > 0) {
      const frame = work[work.length - 1]!;
      const edges = out.get(frame.node) ?? [];
      if (frame.edge < edges.length) {
        const next = edges[frame.edge++]!.to;
        if (!index.has(next)) {
          index.set(next, counter);
          low.set(next, counter++);
          stack.push(next);
          onStack.add(next);
          work.push({ node: next, edge: 0 });
        } else if (onStack.has(next)) {
          low.set(frame.node, Math.min(low.get(frame.node)!, index.get(next)!));
        }
        continue;
      }
      work.pop();
      const parent = work[work.length - 1];
      if (parent) low.set(parent.node, Math.min(low.get(parent.node)!, low.get(frame.node)!));
      if (low.get(frame.node) === index.get(frame.node)) {
        const component: string[] = [];
        let member: string;
        do {
          member = stack.pop()!;
          onStack.delete(member);
          component.push(member);
        } while (member !== frame.node);
        result.push(component.reverse());
      }
    }
  }
  return result;
}

/**
 * A cycle made only of `circular` edges is a group; any cycle with another edge type is an error
 * naming one whole path through a non-circular edge.
 */
function findGroups(names: string[], out: Map<string, GraphEdge[]>): { groups: string[][]; cycleProblems: GraphProblem[] } {
  const groups: string[][] = [];
  const cycleProblems: GraphProblem[] = [];
  for (const component of stronglyConnected(names, out)) {
    if (component.length < 2) continue;
    const members = new Set(component);
    const internal = component.flatMap((n) => (out.get(n) ?? []).filter((e) => members.has(e.to)));
    const offending = internal.find((e) => e.type !== 'circular');
    if (!offending) {
      groups.push([...component].sort());
      continue;
    }
    const path = pathWithin(offending.to, offending.from, members, out);
    const cycle = [offending.from, ...path];
    cycleProblems.push({
      code: 'cycle',
      path: ['services', offending.from, 'dependencies', offending.index],
      message: `Circular dependency detected: ${cycle.join(' → ')}${cycleTypeHint(cycle, out)}`,
    });
  }
  return { groups, cycleProblems };
}

/** Shortest path from `start` to `goal` inside a component (BFS), both ends included. */
function pathWithin(start: string, goal: string, members: Set<string>, out: Map<string, GraphEdge[]>): string[] {
  const prev = new Map<string, string>();
  const queue = [start];
  const seen = new Set([start]);
  while (queue.length > 0) {
    const node = queue.shift()!;
    if (node === goal) break;
    for (const e of out.get(node) ?? []) {
      if (!members.has(e.to) || seen.has(e.to)) continue;
      seen.add(e.to);
      prev.set(e.to, node);
      queue.push(e.to);
    }
  }
  const path = [goal];
  for (let n = goal; n !== start;) {
    n = prev.get(n)!;
    path.push(n);
  }
  return path.reverse();
}

function cycleTypeHint(cycle: string[], out: Map<string, GraphEdge[]>): string {
  const types = cycle.slice(1).map((to, i) => (out.get(cycle[i]!) ?? []).find((e) => e.to === to)?.type ?? 'required');
  if (types.every((t) => t === 'circular')) return '';
  return ` (edge types: ${types.join(', ')}; a cycle is allowed only when every edge in it is 'circular')`;
}
