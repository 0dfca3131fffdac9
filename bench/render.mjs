// Config rendering benchmark: 10,000 service configs across the 5 structured formats (JSON, YAML,
// TOML, INI, ENV) in one process, through the whole pipeline (check every template against the
// context, render, serialise), against a baseline measured in the same run: plain JSON.stringify
// of the same (already resolved) data.
//
//   npx tsc -p tsconfig.build.json && node bench/render.mjs
//
// Each service's template names its own port and its upstream's address, so most template strings
// are distinct: the first ("cold") run compiles nearly every one; later ("warm") runs hit the cache.
// Target (issue 3): all 10,000 under 1 s.
import { performance } from 'node:perf_hooks';
import { buildTemplateContext, renderStackConfigs } from '../dist/template/index.js';
import { median } from './lib.mjs';

const SERVICES = Number(process.env.BENCH_SERVICES ?? 10_000);
const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const FORMATS = ['json', 'yaml', 'toml', 'ini', 'env'];

/** A normalised profile, built directly: loading and validating 10,000 services is not what we measure. */
function makeProfile(n) {
  const services = {};
  for (let i = 0; i < n; i++) {
    const name = `svc-${i}`;
    const format = FORMATS[i % FORMATS.length];
    const up = `svc-${Math.max(0, i - 1)}`;
    const flat = {
      SERVICE_NAME: name,
      PUBLIC_URL: `https://${name}.{{hostname}}`,
      PORT: `{{service.${name}.port}}`,
      UPSTREAM_URL: `{{service.${up}.url}}`,
      UPSTREAM_HOST: `{{service.${up}.host}}:{{service.${up}.port}}`,
      DB_URL: 'postgres://app:{{secret "dbPassword"}}@{{service.svc-0.host}}:{{service.svc-0.port}}/app',
      LOG_LEVEL: '{{logLevel}}',
      DEBUG: `{{#if debug}}1{{else}}0{{/if}}`,
    };
    const data = format === 'env' ? flat : { service: { name, port: flat.PORT, public_url: flat.PUBLIC_URL }, upstream: { url: flat.UPSTREAM_URL, host: flat.UPSTREAM_HOST }, database: { url: flat.DB_URL }, log: { level: flat.LOG_LEVEL, debug: flat.DEBUG } };
    services[name] = {
      name, enable: true, kind: 'service', runtime: 'process', command: ['app'], shell: false, port: 10_000 + i, ports: [], address: '127.0.0.1',
      tags: ['bench'], meta: {}, environment: {}, secretEnvironment: [], dependencies: [],
      templates: [{ destination: `config.${format}`, format, data, env: false, index: 0 }],
      restart: { policy: 'no', maxRetries: 0, backoffMs: 0, maxBackoffMs: 0 }, stopSignal: 'SIGTERM', stopGracePeriodMs: 0, volumes: [],
      resources: {}, security: { readOnlyRootFilesystem: false, noNewPrivileges: false, capDrop: [], capAdd: [], tmpfs: [] }, init: false, pull: 'never', replicas: 1,
    };
  }
  return {
    name: 'bench', domain: 'localhost', runtime: 'process',
    discovery: { backends: ['memory'] }, coordination: { strategy: 'hub-spoke', enableHealthChecks: true, dependencyTimeoutMs: 1000 }, docker: {},
    variables: {
      hostname: { name: 'hostname', type: 'string', required: true, default: 'example.org' },
      logLevel: { name: 'logLevel', type: 'string', required: false, default: 'info' },
      debug: { name: 'debug', type: 'boolean', required: false, default: false },
      dbPassword: { name: 'dbPassword', type: 'secret', required: true },
    },
    services,
    source: { dir: process.cwd(), files: [] },
  };
}

/** The same trees with every value already resolved: what the baseline serialises. */
function resolvedData(profile) {
  const out = [];
  for (const svc of Object.values(profile.services)) {
    const i = Number(svc.name.slice(4));
    const upPort = 10_000 + Math.max(0, i - 1);
    out.push({
      service: { name: svc.name, port: svc.port, public_url: `https://${svc.name}.example.org` },
      upstream: { url: `http://127.0.0.1:${upPort}`, host: `127.0.0.1:${upPort}` },
      database: { url: 'postgres://app:bench-secret-value@127.0.0.1:10000/app' },
      log: { level: 'info', debug: '0' },
    });
  }
  return out;
}

const profile = makeProfile(SERVICES);
const context = buildTemplateContext(profile, { env: {}, vars: { dbPassword: 'bench-secret-value' }, secrets: {} });
const data = resolvedData(profile);

/** Wall-clock time, and this process's CPU time (less sensitive to other load on a shared machine). */
function timeIt(fn) {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const result = fn();
  const ms = performance.now() - t0;
  const cpu = process.cpuUsage(c0);
  return { ms, cpuMs: (cpu.user + cpu.system) / 1000, result };
}

const cold = timeIt(() => renderStackConfigs(profile, { context }));
if (cold.result.problems.length > 0) throw new Error(`unexpected problems: ${cold.result.problems.slice(0, 3).map((p) => p.message).join('; ')}`);
if (cold.result.files.length !== SERVICES) throw new Error(`rendered ${cold.result.files.length} files, expected ${SERVICES}`);

const warm = [];
const warmCpu = [];
const baseline = [];
for (let r = 0; r < RUNS; r++) {
  baseline.push(timeIt(() => data.map((d) => JSON.stringify(d, null, 2))).ms);
  const w = timeIt(() => renderStackConfigs(profile, { context }));
  warm.push(w.ms);
  warmCpu.push(w.cpuMs);
}

// Per format, warm: the same pipeline on the services of one format.
const perFormat = FORMATS.map((format) => {
  const names = Object.values(profile.services).filter((s) => s.templates[0].format === format).map((s) => s.name);
  const ms = median(Array.from({ length: RUNS }, () => timeIt(() => renderStackConfigs(profile, { context, services: names })).ms));
  return { format, files: names.length, ms: Number(ms.toFixed(1)), perSecond: Math.round(names.length / (ms / 1000)) };
});

const warmMs = median(warm);
const baseMs = median(baseline);
const bytes = cold.result.files.reduce((n, f) => n + f.content.length, 0);
console.log(JSON.stringify({
  services: SERVICES,
  formats: FORMATS,
  bytesRendered: bytes,
  coldMs: Number(cold.ms.toFixed(1)),
  coldCpuMs: Number(cold.cpuMs.toFixed(1)),
  warmMedianMs: Number(warmMs.toFixed(1)),
  warmMedianCpuMs: Number(median(warmCpu).toFixed(1)),
  configsPerSecondWarm: Math.round(SERVICES / (warmMs / 1000)),
  configsPerSecondCold: Math.round(SERVICES / (cold.ms / 1000)),
  baselineJsonStringifyMedianMs: Number(baseMs.toFixed(2)),
  ratioWarmToBaseline: Number((warmMs / baseMs).toFixed(1)),
  ratioColdToBaseline: Number((cold.ms / baseMs).toFixed(1)),
  perFormat,
  target: 'all 10,000 under 1000 ms',
  meetsTarget: cold.ms < 1000 && warmMs < 1000,
}, null, 2));
