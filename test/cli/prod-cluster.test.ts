/**
 * The built-in prod-cluster across three hosts (issue 14 item 5), through the built command, as
 * the README brings it up: the hosts' addresses from the environment (PROD_DATA_ADDR,
 * PROD_APP_ADDR, PROD_EDGE_ADDR), the secrets from one --vars file given to every host.
 * Nothing here starts a container: validate, plan per host, render.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runStack } from '../helpers/cli.js';
import { PROD_CLUSTER_ENV, PROD_CLUSTER_SECRETS, prodClusterVars } from '../helpers/prod-cluster.js';
import { startConsulDouble } from '../fixtures/consul-double.js';
import { tmpFiles } from '../helpers/tmp.js';

const { dir, cleanup } = tmpFiles();
afterAll(() => cleanup());
const NO_ADDRESSES = { PROD_DATA_ADDR: undefined, PROD_APP_ADDR: undefined, PROD_EDGE_ADDR: undefined, ATP_DOMAIN: undefined, CONSUL_HTTP_ADDR: undefined };
const stack = (args: string[], env: Record<string, string | undefined> = PROD_CLUSTER_ENV) =>
  runStack(args, { cwd: dir, env: { ...NO_ADDRESSES, APPVIEW_PUBLIC_URL: undefined, OZONE_PUBLIC_URL: undefined, ...env } });
const { data, app, edge } = { data: PROD_CLUSTER_ENV.PROD_DATA_ADDR, app: PROD_CLUSTER_ENV.PROD_APP_ADDR, edge: PROD_CLUSTER_ENV.PROD_EDGE_ADDR };

describe('prod-cluster on three hosts', () => {
  it('validates with its hosts’ addresses; without them, names each variable once (exit 2)', async () => {
    const ok = await stack(['validate', '--profile', 'prod-cluster']);
    expect(ok.code, ok.stderr).toBe(0);
    const missing = await stack(['validate', '--profile', 'prod-cluster'], {});
    expect(missing.code).toBe(2);
    expect(missing.stderr.trim().split('\n')).toEqual([
      expect.stringMatching(
        /prod-cluster\.yaml:\d+:\d+ hosts\.data\.address: required variable PROD_DATA_ADDR is missing: set PROD_DATA_ADDR to the data host's address/,
      ),
      expect.stringMatching(/hosts\.app\.address: required variable PROD_APP_ADDR is missing/),
      expect.stringMatching(/hosts\.edge\.address: required variable PROD_EDGE_ADDR is missing/),
      'prod-cluster: 3 problems found',
    ]);
  });

  it('plan --host: each host starts its share (setup and service-dids on every host) and waits for the others’ in discovery', async () => {
    const plan = async (host: string) => {
      const r = await stack(['plan', '--profile', 'prod-cluster', '--host', host, '--json']);
      expect(r.code, r.stderr).toBe(0);
      const p = JSON.parse(r.stdout) as {
        host: string;
        order: string[][];
        remote: { service: string; host: string; dependents: string[] }[];
        coordination: unknown;
      };
      return { host: p.host, order: p.order, remote: p.remote.map((x) => `${x.service}@${x.host} ← ${x.dependents.join(',')}`) };
    };
    expect(await plan('data')).toEqual({
      host: 'data',
      order: [
        ['postgres', 'setup'],
        ['databases', 'service-dids'],
      ],
      remote: ['plc@app ← service-dids'],
    });
    expect(await plan('app')).toEqual({
      host: 'app',
      order: [['setup'], ['plc'], ['dataplane', 'service-dids'], ['appview']],
      remote: ['databases@data ← dataplane,plc', 'pds@edge ← appview,dataplane', 'postgres@data ← dataplane,plc'],
    });
    expect(await plan('edge')).toEqual({
      host: 'edge',
      order: [['setup'], ['service-dids'], ['pds'], ['ozone'], ['caddy']],
      remote: ['appview@app ← caddy', 'databases@data ← ozone', 'plc@app ← ozone,pds,service-dids', 'postgres@data ← ozone'],
    });
    // Checks probe each service at its host's address.
    const text = await stack(['plan', '--profile', 'prod-cluster', '--host', 'app']);
    expect(text.stdout).toContain(`health: http http://${app}:2582/_health`);
    expect(text.stdout).toMatch(/coordination: mesh across hosts data, app, edge/);
    const unknown = await stack(['plan', '--profile', 'prod-cluster', '--host', 'egde']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/unknown host 'egde'.*did you mean 'edge'/);
  });

  it('renders with the --vars file every host shares: each service reaches the others at their hosts, no secret generated', async () => {
    const vars = prodClusterVars();
    writeFileSync(path.join(dir, 'prod-vars.yaml'), vars.text, { mode: 0o600 });
    // Without it: exit 2 before anything is written, every missing secret named with where to give it.
    const bare = await stack(['render', '--profile', 'prod-cluster', '--out', 'bare']);
    expect(bare.code).toBe(2);
    for (const name of Object.keys(PROD_CLUSTER_SECRETS))
      expect(bare.stderr).toContain(`Required variable '${name}' is missing: give it in a --vars file or as STACK_VAR_`);
    expect(existsSync(path.join(dir, 'bare'))).toBe(false);

    const r = await stack(['render', '--profile', 'prod-cluster', '--vars', 'prod-vars.yaml', '--out', 'out']);
    expect(r.code, r.stderr).toBe(0);
    for (const v of Object.values(vars.values)) expect(r.stdout + r.stderr).not.toContain(v);
    expect(existsSync(path.join(dir, '.stack', 'prod-cluster', 'secrets.json'))).toBe(false); // nothing generated
    const file = (f: string) => readFileSync(path.join(dir, 'out', f), 'utf8');
    expect(file('plc/plc.env')).toContain(`DATABASE_URL=postgres://pg:${vars.values.postgresPassword}@${data}:2578/plc`);
    expect(file('ozone/ozone.env')).toContain(`@${data}:2578/ozone`);
    expect(file('pds/pds.env')).toContain(`PDS_DID_PLC_URL=http://${app}:2582`);
    expect(file('pds/pds.env')).toContain('PDS_BSKY_APP_VIEW_URL=https://api.atproto.example.com');
    expect(file('dataplane/dataplane.env')).toContain(`REPO_PROVIDERS=ws://${edge}:2583`);
    expect(file('appview/appview.env')).toContain(`BSKY_BSYNC_URL=http://${app}:2586`);
    expect(file('service-dids/service-dids.env')).toContain(`APPVIEW_SIGNING_KEY_HEX=${vars.values.appviewSigningKey}`);
    expect(file('caddy/Caddyfile')).toContain(`reverse_proxy ${app}:2584`);
    expect(file('caddy/Caddyfile')).toContain(`reverse_proxy ${edge}:2583`);
  });

  it('stack up --host without the vars file: exit 2 naming the secrets this host’s share uses, nothing started or registered', async () => {
    const consul = await startConsulDouble();
    try {
      const r = await stack(['up', '--profile', 'prod-cluster', '--host', 'data'], { ...PROD_CLUSTER_ENV, CONSUL_HTTP_ADDR: consul.address });
      expect(r.code, r.stderr).toBe(2);
      const named = [...r.stderr.matchAll(/Required variable '(\w+)' is missing: give it in a --vars file/g)].map((m) => m[1]);
      expect([...new Set(named)].sort()).toEqual(['appviewSigningKey', 'ozoneSigningKey', 'postgresPassword']); // postgres, databases, service-dids
      expect(await (await fetch(`http://${consul.address}/v1/agent/services`)).json()).toEqual({});
      expect(existsSync(path.join(dir, '.stack', 'prod-cluster', 'state.json'))).toBe(false);
    } finally {
      await consul.close();
    }
  });
});
