#!/usr/bin/env node
/**
 * A service that finds its peer through its stack's discovery with no configuration at all:
 * `stack` puts STACK_DISCOVERY in the environment of every service it starts, and the library's
 * client reads it. Run by ../discovery-peers.yaml (two of these, `ping` and `pong`).
 *
 * It serves GET /hello, registers itself under the role `greeter`, watches that role, and once
 * its peer is there says hello to it. On SIGTERM it deregisters (with the sql backend, the row
 * stays as history with `stopped_at` set) and exits.
 *
 * Environment (the application's own, not discovery's): NAME, PEER, PORT.
 */
import http from 'node:http';
import { createDiscoveryClient } from 'atproto-stacks';

const name = process.env.NAME ?? 'peer';
const peer = process.env.PEER ?? 'other';
const port = Number(process.env.PORT ?? 0);

const server = http.createServer((req, res) => {
  res.end(req.url === '/hello' ? `hello from ${name}` : 'ok');
});
await new Promise((resolve) => server.listen(port, '127.0.0.1', resolve));
const url = `http://127.0.0.1:${server.address().port}`;

// The two lines: reach the stack's discovery, register (heartbeats are built in).
const discovery = await createDiscoveryClient();
await discovery.register('greeter', { id: name, address: '127.0.0.1', port: server.address().port, url });
console.log(`${name}: registered as greeter/${name} at ${url}`);

process.once('SIGTERM', async () => {
  await discovery.deregister('greeter', name).catch(() => undefined);
  await discovery.close();
  server.close();
  process.exit(0);
});

let present = false;
for await (const instances of discovery.watch('greeter')) {
  const other = instances.find((i) => i.id === peer);
  if (other && !present) {
    const reply = await fetch(`${other.url}/hello`).then((r) => r.text(), (err) => `(unreachable: ${err.message})`);
    console.log(`${name}: found peer ${peer} at ${other.url}: ${reply}`);
  } else if (!other && present) {
    console.log(`${name}: peer ${peer} left`);
  }
  present = !!other;
}
