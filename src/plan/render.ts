/** Drawing the graph: Graphviz DOT, Mermaid, or JSON. Edge types are visibly distinct. */
import type { DependencyType } from '../graph/types.js';
import type { Plan, StackGraph } from './types.js';

export type GraphFormat = 'dot' | 'mermaid' | 'json';

const DOT_STYLE: Record<DependencyType, string> = {
  required: 'style=solid, color="#1f2937", penwidth=1.6',
  optional: 'style=dashed, color="#2563eb"',
  soft: 'style=dotted, color="#6b7280"',
  circular: 'style=bold, color="#dc2626", dir=both',
};

const MERMAID_ARROW: Record<DependencyType, string> = {
  required: '-->',
  optional: '-.->',
  soft: '-.-',
  circular: '<==>',
};

const quote = (s: string) => JSON.stringify(s);

export function renderGraph(graph: StackGraph, plan: Plan, format: GraphFormat): string {
  const active = new Set(plan.services.map((s) => s.name));
  const blocked = new Map(plan.blocked.map((b) => [b.service, b.reason]));
  const skipped = new Map(plan.skipped.map((s) => [s.service, s.reason]));
  // A circular pair is drawn once, as a two-headed edge.
  const edges = graph.edges.filter(
    (e) => !(e.type === 'circular' && graph.edges.some((o) => o.type === 'circular' && o.from === e.to && o.to === e.from && o.from < e.from)),
  );
  const names = [...graph.services.keys()].sort();

  if (format === 'json') {
    return `${JSON.stringify(
      {
        stack: plan.stack,
        nodes: names.map((n) => {
          const s = graph.services.get(n)!;
          return {
            name: n,
            kind: s.kind,
            runtime: s.runtime,
            state: active.has(n) ? 'planned' : blocked.has(n) ? 'blocked' : 'skipped',
            ...(graph.groupOf(n) !== undefined ? { group: graph.groupOf(n) } : {}),
          };
        }),
        edges: graph.edges.map(({ from, to, type, gate }) => ({ from, to, type, gate })),
        groups: graph.groups,
      },
      null,
      2,
    )}\n`;
  }

  if (format === 'mermaid') {
    const lines = ['flowchart BT'];
    for (const n of names) {
      const s = graph.services.get(n)!;
      const label = s.kind === 'task' ? `[/${n}/]` : `[${n}]`;
      lines.push(`  ${id(n)}${label}`);
    }
    for (const e of edges) lines.push(`  ${id(e.from)} ${MERMAID_ARROW[e.type]}|${e.type}| ${id(e.to)}`);
    graph.groups.forEach((g, i) => {
      lines.push(`  subgraph group${i} [circular group]`, ...g.map((m) => `    ${id(m)}`), '  end');
    });
    lines.push('  classDef blocked fill:#fee2e2,stroke:#dc2626', '  classDef skipped fill:#f3f4f6,stroke:#9ca3af,color:#6b7280');
    for (const n of blocked.keys()) lines.push(`  class ${id(n)} blocked`);
    for (const n of skipped.keys()) lines.push(`  class ${id(n)} skipped`);
    return `${lines.join('\n')}\n`;
  }

  const lines = [`digraph ${quote(plan.stack)} {`, '  rankdir=BT;', '  node [shape=box, style="rounded,filled", fillcolor="#ffffff", fontname="Helvetica"];'];
  for (const n of names) {
    const s = graph.services.get(n)!;
    const attrs = [`label=${quote(s.kind === 'task' ? `${n} (task)` : n)}`];
    if (blocked.has(n)) attrs.push('fillcolor="#fee2e2"', 'color="#dc2626"', `tooltip=${quote(blocked.get(n)!)}`);
    else if (skipped.has(n)) attrs.push('fillcolor="#f3f4f6"', 'fontcolor="#6b7280"', `tooltip=${quote(skipped.get(n)!)}`);
    if (s.kind === 'task') attrs.push('shape=parallelogram');
    lines.push(`  ${quote(n)} [${attrs.join(', ')}];`);
  }
  graph.groups.forEach((g, i) => {
    lines.push(`  subgraph cluster_group${i} {`, '    label="circular group"; style=dashed; color="#dc2626";', ...g.map((m) => `    ${quote(m)};`), '  }');
  });
  for (const e of edges) lines.push(`  ${quote(e.from)} -> ${quote(e.to)} [${DOT_STYLE[e.type]}, label=${quote(e.type)}];`);
  lines.push('}');
  return `${lines.join('\n')}\n`;
}

/** Mermaid node ids cannot hold '-'. */
function id(name: string): string {
  return `n_${name.replace(/-/g, '_')}`;
}
