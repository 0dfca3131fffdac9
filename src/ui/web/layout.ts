/** The graph's layout, by dagre (layered, left to right: a service right of what it depends on). */
import { Graph, layout } from '@dagrejs/dagre';
import type { GraphView } from '../view.ts';

export interface Placed {
  nodes: { name: string; x: number; y: number }[];
  edges: { from: string; to: string; type: string; points: { x: number; y: number }[] }[];
  /** Boxes around circular groups. */
  groups: { index: number; x: number; y: number; width: number; height: number }[];
  width: number;
  height: number;
}

export const NODE_W = 150;
export const NODE_H = 44;

export function place(graph: GraphView): Placed {
  const g = new Graph({ multigraph: true });
  g.setGraph({ rankdir: 'LR', nodesep: 30, ranksep: 56, marginx: 16, marginy: 30 }); // room for group labels
  g.setDefaultEdgeLabel(() => ({}));
  for (const n of graph.nodes) g.setNode(n.name, { width: NODE_W, height: NODE_H });
  // Drawn from the dependency to its dependent: the start order reads left to right.
  graph.edges.forEach((e, i) => g.setEdge(e.to, e.from, {}, `e${i}`));
  layout(g);
  const nodes = graph.nodes.map((n) => {
    const p = g.node(n.name) as { x: number; y: number };
    return { name: n.name, x: p.x, y: p.y };
  });
  const edges = graph.edges.map((e, i) => {
    const label = g.edge(e.to, e.from, `e${i}`) as { points?: { x: number; y: number }[] } | undefined;
    return { from: e.from, to: e.to, type: e.type, points: label?.points ?? [] };
  });
  const at = new Map(nodes.map((n) => [n.name, n]));
  const groups = graph.groups.map((members, index) => {
    const ps = members.flatMap((m) => at.get(m) ?? []);
    const xs = ps.map((p) => p.x);
    const ys = ps.map((p) => p.y);
    const pad = 10;
    const x = Math.min(...xs) - NODE_W / 2 - pad;
    const y = Math.min(...ys) - NODE_H / 2 - pad - 12;
    return { index, x, y, width: Math.max(...xs) - Math.min(...xs) + NODE_W + 2 * pad, height: Math.max(...ys) - Math.min(...ys) + NODE_H + 2 * pad + 12 };
  });
  const size = g.graph() as { width?: number; height?: number };
  return { nodes, edges, groups, width: Math.max(size.width ?? 0, 200), height: Math.max(size.height ?? 0, 80) };
}
