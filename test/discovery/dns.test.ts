import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InvalidInputError, UnreachableError } from '../../src/errors.js';
import { createDnsBackend } from '../../src/discovery/dns.js';
import { freePort } from '../helpers/net.js';
import { startDnsmasq, type DnsZone, type DnsmasqServer } from '../fixtures/dnsmasq.js';
import { describeBackendConformance, type SeedRecord } from './conformance.js';

const DOMAIN = 'test.local';

// The conformance suite: one dnsmasq for the suite, seeded records accumulate (each seed restarts it).
let suiteServer: DnsmasqServer | undefined;
const suiteZone: Required<DnsZone> = { srv: [], hosts: [] };
let seeded = 0;

async function suiteDns(): Promise<DnsmasqServer> {
  suiteServer ??= await startDnsmasq({ domain: DOMAIN });
  return suiteServer;
}

describeBackendConformance('dns', {
  make: async () => createDnsBackend({ server: (await suiteDns()).server, domain: DOMAIN }),
  seed: async (records: SeedRecord[]) => {
    for (const r of records) {
      seeded += 1;
      const target = `${r.service}-${seeded}.${DOMAIN}`;
      suiteZone.srv.push({ name: `_${r.service}._tcp.${DOMAIN}`, target, port: r.port });
      suiteZone.hosts.push({ name: target, addresses: [r.address] });
    }
    await (await suiteDns()).update(suiteZone);
  },
  seedsSeveralInstances: true,
  cleanup: async () => {
    await suiteServer?.stop();
    suiteServer = undefined;
  },
});

describe('dns backend specifics', () => {
  let dns: DnsmasqServer;
  beforeAll(async () => {
    dns = await startDnsmasq({
      domain: DOMAIN,
      srv: [
        { name: `_pds._tcp.${DOMAIN}`, target: `pds-b.${DOMAIN}`, port: 3001, priority: 20, weight: 5 },
        { name: `_pds._tcp.${DOMAIN}`, target: `pds-a.${DOMAIN}`, port: 3000, priority: 10, weight: 5 },
        { name: `_relay._tcp.${DOMAIN}`, target: `relay-host.${DOMAIN}`, port: 2470 },
      ],
      hosts: [
        { name: `pds-a.${DOMAIN}`, addresses: ['127.0.0.11'] },
        { name: `pds-b.${DOMAIN}`, addresses: ['127.0.0.12'] },
        { name: `plc.${DOMAIN}`, addresses: ['127.0.0.13', '::1'] },
      ],
    });
  });
  afterAll(async () => {
    await dns?.stop();
  });

  it('prefers SRV records, ordered by priority, with addresses from the targets', async () => {
    const b = createDnsBackend({ server: dns.server, domain: DOMAIN });
    const found = await b.lookup('pds');
    expect(found.map((i) => [i.address, i.port])).toEqual([
      ['127.0.0.11', 3000],
      ['127.0.0.12', 3001],
    ]);
    expect(found[0]).toMatchObject({ id: `pds-a.${DOMAIN}:3000`, service: 'pds', meta: { target: `pds-a.${DOMAIN}`, priority: '10' } });
    await b.close();
  });

  it('keeps the SRV target name as the address when it has no A/AAAA record', async () => {
    const b = createDnsBackend({ server: dns.server, domain: `${DOMAIN}.` });
    expect(await b.lookup('relay')).toMatchObject([{ address: `relay-host.${DOMAIN}`, port: 2470 }]);
    await b.close();
  });

  it('falls back to A and AAAA records of <service>.<domain> when there is no SRV record', async () => {
    const b = createDnsBackend({ server: dns.server, domain: DOMAIN });
    const found = await b.lookup('plc');
    expect(found.map((i) => i.address).sort()).toEqual(['127.0.0.13', '::1']);
    expect(found.every((i) => i.port === undefined)).toBe(true);
    await b.close();
  });

  it('a server that does not answer is UnreachableError (exit 3) at check and lookup', async () => {
    const port = await freePort(); // nothing listens there
    const b = createDnsBackend({ server: `127.0.0.1:${port}`, domain: DOMAIN, timeoutMs: 200, tries: 1 });
    await expect(b.check()).rejects.toBeInstanceOf(UnreachableError);
    const err = await b.lookup('pds').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UnreachableError);
    expect((err as UnreachableError).exitCode).toBe(3);
    await b.close();
  });

  it('a server that refuses the domain is an error, not an empty answer', async () => {
    const b = createDnsBackend({ server: dns.server, domain: 'elsewhere.example' });
    await expect(b.lookup('pds')).rejects.toBeInstanceOf(UnreachableError);
    await b.close();
  });

  it('rejects a server that is not an IP address with a port', () => {
    expect(() => createDnsBackend({ server: 'dns.example:53', domain: DOMAIN })).toThrow(InvalidInputError);
    expect(() => createDnsBackend({ server: '127.0.0.1:99999', domain: DOMAIN })).toThrow(InvalidInputError);
    expect(() => createDnsBackend({ server: '[::1]:5353', domain: DOMAIN })).not.toThrow();
  });
});
