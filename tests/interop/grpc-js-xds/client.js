// A foreign xDS client for turnout's interop tests: @grpc/grpc-js with
// @grpc/grpc-js-xds, configured by GRPC_XDS_BOOTSTRAP_CONFIG (ADS to
// turnout-cp). One long-lived process, so that it sees pushes: every line on
// stdin is a JSON list of calls,
//   [{"target": "xds:///reviews", "metadata": {"baggage": "..."}}, ...]
// each made in order as a unary call to /turnout.test.Backend/Who (raw bytes,
// no proto) on one channel per target, and answered by one JSON line: a list
// with, per call, {"backend": "<the answering backend's name>"} or
// {"error": "<status>: <details>"}. A call that fails before its target ever
// answered is retried for up to --wait-ms (the channel's xDS config may still
// be arriving); later calls are made once. Ends at EOF.
'use strict';

const readline = require('readline');
const grpc = require('@grpc/grpc-js');
require('@grpc/grpc-js-xds').register();

const METHOD = '/turnout.test.Backend/Who';
const waitArg = process.argv.find((a) => a.startsWith('--wait-ms='));
const WAIT_MS = waitArg ? Number(waitArg.slice('--wait-ms='.length)) : 10000;
const identity = (b) => b;
const clients = new Map();
const answered = new Set();  // targets that answered once

function call(client, metadata) {
  return new Promise((resolve) => {
    const md = new grpc.Metadata();
    for (const [k, v] of Object.entries(metadata || {})) md.add(k, v);
    client.makeUnaryRequest(METHOD, identity, identity, Buffer.alloc(0), md,
      { deadline: Date.now() + 3000 },
      (err, reply) => resolve(err ? { error: `${grpc.status[err.code]}: ${err.details}` }
        : { backend: reply.toString() }));
  });
}

async function batch(calls) {
  const out = [];
  for (const { target, metadata } of calls) {
    if (!clients.has(target)) {
      clients.set(target, new grpc.Client(target, grpc.credentials.createInsecure()));
    }
    const client = clients.get(target);
    // Until a target's first answer its channel may still be resolving.
    const deadline = Date.now() + (answered.has(target) ? 0 : WAIT_MS);
    let result = await call(client, metadata);
    while (result.error && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      result = await call(client, metadata);
    }
    if (!result.error) answered.add(target);
    out.push(result);
  }
  return out;
}

async function main() {
  const lines = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
  for await (const line of lines) {
    if (!line.trim()) continue;
    const results = await batch(JSON.parse(line));
    process.stdout.write(JSON.stringify(results) + '\n');
  }
  for (const c of clients.values()) c.close();
  process.exit(0);
}

main().catch((e) => {
  process.stderr.write(`client.js: ${e.stack || e}\n`);
  process.exit(1);
});
