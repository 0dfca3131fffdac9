/**
 * The page of `stack ui`: the graph, every service, the selected service's log and configs, the
 * stack's events, and the actions. Everything arrives on one event stream (/events) and is folded
 * into the view by the shared reducer (../view.ts); the log follows on its own stream (/logs).
 * The token comes from the page's address and goes with every request.
 */
import { render } from 'preact';
import { useEffect, useMemo, useReducer, useRef, useState } from 'preact/hooks';
import { applyMessage, describeEvent, formatUptime, initialView, stateTone, type PageView, type ServiceView, type UiMessage } from '../view.ts';
import { NODE_H, NODE_W, place } from './layout.ts';

const token = new URLSearchParams(location.search).get('token') ?? '';
const withToken = (path: string, params: Record<string, string> = {}) => `${path}?${new URLSearchParams({ ...params, token }).toString()}`;

type Confirm = { title: string; detail: string; run: () => Promise<void> };

function App() {
  const [view, dispatch] = useReducer((v: PageView, m: UiMessage) => applyMessage(v, m), undefined, initialView);
  const [connected, setConnected] = useState(false);
  const [selected, setSelected] = useState<string | undefined>(undefined);
  const [now, setNow] = useState(Date.now());
  const [confirm, setConfirm] = useState<Confirm | undefined>(undefined);
  const [outcome, setOutcome] = useState<{ ok: boolean; text: string } | undefined>(undefined);

  useEffect(() => {
    const source = new EventSource(withToken('/events'));
    source.onopen = () => setConnected(true);
    source.onerror = () => setConnected(false);
    source.onmessage = (e: MessageEvent<string>) => dispatch(JSON.parse(e.data) as UiMessage);
    const tick = setInterval(() => setNow(Date.now()), 1000);
    return () => {
      source.close();
      clearInterval(tick);
    };
  }, []);

  const names = useMemo(() => Object.keys(view.services).sort(), [view.services]);
  const current = selected ? view.services[selected] : undefined;

  const act = (action: 'restart' | 'render' | 'stop', service?: string) => async () => {
    setOutcome(undefined);
    try {
      const res = await fetch(`/api/actions/${action}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-stack-token': token },
        body: JSON.stringify(service ? { service } : {}),
      });
      const body = (await res.json()) as { ok: boolean; message?: string; error?: string };
      setOutcome({ ok: body.ok, text: body.ok ? (body.message ?? 'done') : (body.error ?? 'failed') });
    } catch (err) {
      setOutcome({ ok: false, text: String(err) });
    }
  };

  return (
    <div class="shell">
      <header class="top">
        <h1>
          stack <span class="stack-name">{view.stack || '…'}</span>
          {view.phase ? <span class={`phase phase-${view.phase}`}>{view.phase}</span> : null}
        </h1>
        <p class="owner">{ownerText(view)}</p>
        <p class={`conn ${connected ? 'live' : 'down'}`} role="status" aria-live="polite">
          {connected ? 'live' : 'reconnecting…'}
        </p>
        <button
          type="button"
          class="danger"
          onClick={() =>
            setConfirm({ title: `Stop stack '${view.stack}'?`, detail: 'Every service is stopped, dependents first, as `stack down` does.', run: act('stop') })
          }
        >
          Stop stack
        </button>
      </header>
      {outcome ? (
        <p class={`outcome ${outcome.ok ? 'ok' : 'bad'}`} role="status" data-testid="outcome">
          {outcome.text}
        </p>
      ) : null}
      <main class="grid">
        <section class="panel graph-panel" aria-labelledby="graph-h">
          <h2 id="graph-h">Dependency graph</h2>
          <GraphSvg view={view} selected={selected} onSelect={setSelected} />
          <Legend />
        </section>
        <section class="panel services-panel" aria-labelledby="services-h">
          <h2 id="services-h">Services</h2>
          <ServicesTable view={view} names={names} now={now} selected={selected} onSelect={setSelected} />
        </section>
        <section class="panel detail-panel" aria-labelledby="detail-h">
          <h2 id="detail-h">{current ? `Service ${current.name}` : 'Select a service'}</h2>
          {current ? (
            <Detail
              key={current.name}
              service={current}
              now={now}
              onRestart={() =>
                setConfirm({
                  title: `Restart '${current.name}'?`,
                  detail: 'It is stopped and started again; its templates render again first.',
                  run: act('restart', current.name),
                })
              }
              onRender={() =>
                setConfirm({
                  title: `Re-render the templates of '${current.name}'?`,
                  detail: 'Its config files are written again from the current discovery records; they apply when it restarts.',
                  run: act('render', current.name),
                })
              }
            />
          ) : (
            <p class="hint">Choose a service in the graph or the table to see its log, configs and actions.</p>
          )}
        </section>
        <section class="panel events-panel" aria-labelledby="events-h">
          <h2 id="events-h">Events</h2>
          <Events view={view} />
        </section>
      </main>
      {confirm ? <ConfirmDialog confirm={confirm} onClose={() => setConfirm(undefined)} /> : null}
    </div>
  );
}

function ownerText(view: PageView): string {
  const o = view.owner;
  if (!o) return view.phase ? '' : 'nothing is running';
  if (o.alive) return `supervised by pid ${o.pid}${o.detached ? ' (detached)' : ''}`;
  return `started by pid ${o.pid}, which is gone: nothing supervises it (shown from the state folder)`;
}

function GraphSvg({ view, selected, onSelect }: { view: PageView; selected: string | undefined; onSelect: (name: string) => void }) {
  const placed = useMemo(() => place(view.graph), [view.graph]);
  return (
    <div class="graph-scroll">
      <svg
        class="graph"
        viewBox={`0 0 ${placed.width} ${placed.height}`}
        width={placed.width}
        height={placed.height}
        role="group"
        aria-label="Dependency graph: each service and what it depends on"
      >
        <defs>
          <marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse">
            <path d="M 0 0 L 10 5 L 0 10 z" class="arrow" />
          </marker>
        </defs>
        {placed.groups.map((g) => (
          <g key={`group-${g.index}`} class="group">
            <rect x={g.x} y={g.y} width={g.width} height={g.height} rx="10" />
            <text x={g.x + 8} y={g.y + 13}>
              circular group {g.index + 1}
            </text>
          </g>
        ))}
        {placed.edges.map((e, i) => (
          <path
            key={`edge-${i}`}
            class={`edge edge-${e.type}`}
            d={pathOf(e.points)}
            marker-end="url(#arrow)"
            data-edge={`${e.to}->${e.from}`}
            data-type={e.type}
          >
            <title>{`${e.from} depends on ${e.to} (${e.type})`}</title>
          </path>
        ))}
        {placed.nodes.map((n) => {
          const s = view.services[n.name];
          const state = s?.state ?? 'pending';
          return (
            <g
              key={n.name}
              class={`node tone-${stateTone(state)}${selected === n.name ? ' selected' : ''}`}
              transform={`translate(${n.x - NODE_W / 2}, ${n.y - NODE_H / 2})`}
              tabindex={0}
              role="button"
              aria-label={`${n.name}: ${state}`}
              aria-pressed={selected === n.name}
              data-service={n.name}
              data-state={state}
              onClick={() => onSelect(n.name)}
              onKeyDown={(e: KeyboardEvent) => {
                if (e.key === 'Enter' || e.key === ' ') {
                  e.preventDefault();
                  onSelect(n.name);
                }
              }}
            >
              <rect width={NODE_W} height={NODE_H} rx="8" />
              <text x="10" y="18" class="node-name">
                {n.name}
              </text>
              <text x="10" y="35" class="node-state">
                {state}
                {s?.health === 'unhealthy' ? ' · unhealthy' : ''}
              </text>
            </g>
          );
        })}
      </svg>
    </div>
  );
}

function pathOf(points: { x: number; y: number }[]): string {
  return points.map((p, i) => `${i === 0 ? 'M' : 'L'} ${p.x.toFixed(1)} ${p.y.toFixed(1)}`).join(' ');
}

function Legend() {
  const items: [string, string][] = [
    ['required', 'required: waits until healthy'],
    ['optional', 'optional: waits until settled'],
    ['soft', 'soft: waits until started'],
    ['circular', 'circular: start together'],
  ];
  return (
    <ul class="legend" aria-label="Edge types">
      {items.map(([type, text]) => (
        <li key={type}>
          <svg width="36" height="10" aria-hidden="true">
            <line x1="0" y1="5" x2="36" y2="5" class={`edge edge-${type}`} />
          </svg>
          {text}
        </li>
      ))}
    </ul>
  );
}

function ServicesTable({
  view,
  names,
  now,
  selected,
  onSelect,
}: {
  view: PageView;
  names: string[];
  now: number;
  selected: string | undefined;
  onSelect: (n: string) => void;
}) {
  return (
    <div class="table-scroll">
      <table class="services">
        <caption class="sr-only">Every service: state, health, last check, restarts, uptime, host and registrations</caption>
        <thead>
          <tr>
            <th scope="col">Service</th>
            <th scope="col">State</th>
            <th scope="col">Health</th>
            <th scope="col">Last check</th>
            <th scope="col">Restarts</th>
            <th scope="col">Uptime</th>
            <th scope="col">Host</th>
            <th scope="col">Registrations</th>
          </tr>
        </thead>
        <tbody>
          {names.map((name) => {
            const s = view.services[name]!;
            return (
              <tr key={name} data-service={name} class={selected === name ? 'selected' : ''}>
                <th scope="row">
                  <button type="button" class="link" onClick={() => onSelect(name)} aria-pressed={selected === name}>
                    {name}
                  </button>
                </th>
                <td data-col="state">
                  <span class={`badge tone-${stateTone(s.state)}`}>{s.state}</span>
                  {s.reason ? <span class="reason"> {s.reason}</span> : null}
                </td>
                <td data-col="health">{s.health}</td>
                <td data-col="check">{s.lastHealth ? `${s.lastHealth.ok ? 'ok' : 'fail'}: ${s.lastHealth.detail}` : '–'}</td>
                <td data-col="restarts">{s.restarts}</td>
                <td data-col="uptime">{s.running && s.startedAt ? formatUptime(now - Date.parse(s.startedAt)) : '–'}</td>
                <td data-col="host">
                  {s.node ? `${s.node.host}${s.node.port !== undefined ? `:${s.node.port}` : ''}` : '–'}
                  {s.pid !== undefined ? <span class="muted"> pid {s.pid}</span> : s.container ? <span class="muted"> {s.container}</span> : null}
                </td>
                <td data-col="registrations">
                  {s.registrations.length === 0
                    ? '–'
                    : s.registrations.map((r) => r.url ?? `${r.address}${r.port !== undefined ? `:${r.port}` : ''}`).join(', ')}
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
      {view.registrationsError ? <p class="muted">discovery: {view.registrationsError}</p> : null}
    </div>
  );
}

function Detail({ service, now, onRestart, onRender }: { service: ServiceView; now: number; onRestart: () => void; onRender: () => void }) {
  return (
    <div class="detail">
      <dl class="facts">
        <dt>State</dt>
        <dd>
          {service.state}
          {service.reason ? ` — ${service.reason}` : ''}
        </dd>
        <dt>Health</dt>
        <dd>{service.health}</dd>
        <dt>Uptime</dt>
        <dd>{service.running && service.startedAt ? formatUptime(now - Date.parse(service.startedAt)) : '–'}</dd>
        <dt>Registrations</dt>
        <dd>
          {service.registrations.length === 0
            ? 'none'
            : service.registrations
                .map((r) => `${r.id} → ${r.url ?? r.address}${r.expiresAt ? ` (expires ${new Date(r.expiresAt).toLocaleTimeString()})` : ''}`)
                .join('; ')}
        </dd>
      </dl>
      <div class="actions">
        <button type="button" onClick={onRestart}>
          Restart {service.name}
        </button>
        <button type="button" onClick={onRender}>
          Re-render templates
        </button>
      </div>
      <LogPane service={service.name} />
      <ConfigsPane service={service.name} renderedAt={service.lastRender?.at} />
    </div>
  );
}

function LogPane({ service }: { service: string }) {
  const [lines, setLines] = useState<string[]>([]);
  const [follow, setFollow] = useState(true);
  const ref = useRef<HTMLPreElement>(null);
  useEffect(() => {
    setLines([]);
    const source = new EventSource(withToken('/logs', { service }));
    let first = true;
    source.onopen = () => {
      // A reconnect starts from the tail again: drop what we had.
      if (!first) setLines([]);
      first = false;
    };
    source.onmessage = (e: MessageEvent<string>) => {
      const m = JSON.parse(e.data) as { line?: string; error?: string };
      const text = m.line ?? `[${m.error ?? ''}]`;
      setLines((old) => [...old, text].slice(-1000));
    };
    return () => source.close();
  }, [service]);
  useEffect(() => {
    if (follow && ref.current) ref.current.scrollTop = ref.current.scrollHeight;
  }, [lines, follow]);
  return (
    <section class="log" aria-labelledby="log-h">
      <div class="bar">
        <h3 id="log-h">Log</h3>
        <label>
          <input type="checkbox" checked={follow} onChange={(e) => setFollow((e.target as HTMLInputElement).checked)} /> follow
        </label>
      </div>
      <pre ref={ref} class="log-lines" tabIndex={0} aria-label={`Log of ${service}`} data-testid="log">
        {lines.length === 0 ? '(no output yet)' : lines.join('\n')}
      </pre>
    </section>
  );
}

interface ConfigsView {
  files: { path: string; bytes: number; mode: string; modifiedAt: string; secret: boolean; content: string; truncated: boolean }[];
  lastRender?: { at: string; why: string; files: string[] };
  unknownSecrets: string[];
  error?: string;
}

function ConfigsPane({ service, renderedAt }: { service: string; renderedAt: string | undefined }) {
  const [configs, setConfigs] = useState<ConfigsView | undefined>(undefined);
  useEffect(() => {
    let live = true;
    void fetch(withToken('/api/configs', { service }), { headers: { 'x-stack-token': token } })
      .then((r) => r.json() as Promise<ConfigsView>)
      .then((c) => live && setConfigs(c))
      .catch(() => undefined);
    return () => {
      live = false;
    };
  }, [service, renderedAt]);
  return (
    <section class="configs" aria-labelledby="configs-h">
      <h3 id="configs-h">Rendered configs</h3>
      {!configs ? (
        <p class="muted">loading…</p>
      ) : configs.error ? (
        <p class="muted">{configs.error}</p>
      ) : configs.files.length === 0 ? (
        <p class="muted">no rendered config files</p>
      ) : (
        <>
          {configs.lastRender ? (
            <p class="render-why" data-testid="render-why">
              last rendered {new Date(configs.lastRender.at).toLocaleString()}: {configs.lastRender.why}
            </p>
          ) : null}
          {configs.unknownSecrets.length > 0 ? (
            <p class="muted">secret values unknown here ({configs.unknownSecrets.join(', ')}): files holding secrets are masked line by line</p>
          ) : null}
          {configs.files.map((f) => (
            <details key={f.path} open={configs.files.length === 1}>
              <summary>
                {f.path}{' '}
                <span class="muted">
                  ({f.bytes} bytes, mode {f.mode}
                  {f.secret ? ', holds secrets' : ''}, written {new Date(f.modifiedAt).toLocaleTimeString()})
                </span>
              </summary>
              <pre class="config" tabIndex={0} aria-label={`Content of ${f.path}`}>
                {f.content}
                {f.truncated ? '\n…' : ''}
              </pre>
            </details>
          ))}
        </>
      )}
    </section>
  );
}

function Events({ view }: { view: PageView }) {
  const ref = useRef<HTMLDivElement>(null);
  useEffect(() => {
    if (ref.current) ref.current.scrollTop = ref.current.scrollHeight;
  }, [view.events.length]);
  return (
    <div class="events" ref={ref} role="log" aria-label="Stack events" tabIndex={0} data-testid="events">
      <ol>
        {view.events.map((e, i) => (
          <li key={i} class={`ev ev-${e.type}`}>
            <time dateTime={e.time}>{new Date(e.time).toLocaleTimeString()}</time> {describeEvent(e)}
          </li>
        ))}
        {view.notes.map((n, i) => (
          <li key={`note-${i}`} class="ev ev-note">
            {n}
          </li>
        ))}
      </ol>
    </div>
  );
}

function ConfirmDialog({ confirm, onClose }: { confirm: Confirm; onClose: () => void }) {
  const ref = useRef<HTMLDialogElement>(null);
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    ref.current?.showModal();
  }, []);
  return (
    <dialog ref={ref} class="confirm" aria-labelledby="confirm-h" aria-describedby="confirm-d" onClose={onClose}>
      <h2 id="confirm-h">{confirm.title}</h2>
      <p id="confirm-d">{confirm.detail}</p>
      <div class="actions">
        <button type="button" onClick={() => ref.current?.close()} disabled={busy}>
          Cancel
        </button>
        <button
          type="button"
          class="danger"
          disabled={busy}
          onClick={() => {
            setBusy(true);
            // run() reports its own failures as the outcome; it never rejects.
            void confirm.run().then(() => ref.current?.close());
          }}
        >
          Confirm
        </button>
      </div>
    </dialog>
  );
}

const root = document.getElementById('app')!;
root.textContent = ''; // the "Loading…" placeholder
render(<App />, root);
