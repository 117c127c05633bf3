// A load generator for bench/node.py: POST /verify over keep-alive HTTP/1.1, open or closed loop.
//
//   node bench/loadgen.js URL[,URL...] BODIES.jsonl --rate R --seconds S [--warmup W] [--connections C] [--start I]
//
// With several URLs (replica nodes), connections are spread over them in turn, as a layer-4 load
// balancer would.
// Open loop (--rate R > 0), as wrk2 does it: request i is due at start + i/R whatever happened to
// the ones before, and its latency runs from that due time, not from when a connection was free to
// send it. A server that stalls is charged for every request that waited behind the stall
// (coordinated omission corrected). Requests wait for a free connection of C (one request in flight
// each); none is dropped. Closed loop (--rate 0): each connection sends its next request as soon as
// its answer is in, which measures the peak throughput. An answer saying `Connection: close` (the
// node caps requests per connection, FINVAULT_HTTP_MAX_REQUESTS_PER_CONNECTION) is its connection's
// last: the generator opens another, as a browser or an HTTP library would.
//
// An answer counts only if it is HTTP 200 and its body says "status":"VALID"; anything else,
// a socket error or a request still unanswered at the end, is an error. Bodies are sent in turn,
// one per line of BODIES.jsonl (each a receipt on one line). After W seconds of warm-up (not
// recorded), S seconds are measured. Prints one JSON line: counts, achieved rate, latency
// percentiles and the generator's own CPU time, so its cost on shared cores is known.

"use strict";

const fs = require("fs");
const net = require("net");

const VALID = Buffer.from('"status":"VALID"');
const HEAD_END = Buffer.from("\r\n\r\n");

function parseArgs(argv) {
  const [url, bodiesPath, ...rest] = argv;
  const options = { rate: 0, seconds: 10, warmup: 2, connections: 64, start: 0 };
  for (let i = 0; i < rest.length; i += 2) {
    const name = rest[i].replace(/^--/, "");
    if (!(name in options)) throw new Error(`unknown option ${rest[i]}`);
    options[name] = Number(rest[i + 1]);
  }
  const targets = url.split(",").map((each) => {
    const { hostname, port } = new URL(each);
    return { host: hostname, port: Number(port) };
  });
  return { host: targets[0].host, targets, bodiesPath, ...options };
}

function requests(host, bodiesPath) {
  return fs
    .readFileSync(bodiesPath, "utf8")
    .split("\n")
    .filter((line) => line.length > 0)
    .map((body) => {
      const payload = Buffer.from(body);
      const head = `POST /verify HTTP/1.1\r\nHost: ${host}\r\nContent-Type: application/json\r\nContent-Length: ${payload.length}\r\n\r\n`;
      return Buffer.concat([Buffer.from(head), payload]);
    });
}

function percentile(sorted, fraction) {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.floor(fraction * sorted.length))];
}

function run(options) {
  const payloads = requests(options.host, options.bodiesPath);
  const now = () => performance.now(); // milliseconds, monotonic
  const startedAt = now();
  const measureFrom = startedAt + options.warmup * 1000;
  const stopAt = measureFrom + options.seconds * 1000;
  const cpuAtMeasure = { value: null };
  const latencies = [];
  const counts = { sent: 0, answered: 0, measured: 0, errors: 0, notValid: 0, socketErrors: 0, unanswered: 0 };
  const waiting = []; // due times of open-loop requests waiting for a free connection
  const idle = [];
  let next = options.start;
  let finished = false;

  function record(due, ok) {
    const at = now();
    counts.answered += 1;
    if (due >= measureFrom && due < stopAt) {
      counts.measured += 1;
      latencies.push(at - due);
      if (!ok) counts.errors += 1;
    }
  }

  let opened = 0;
  function connection() {
    const target = options.targets[opened % options.targets.length];
    opened += 1;
    const socket = net.connect({ host: target.host, port: target.port, noDelay: true });
    const state = { socket, due: null, buffer: Buffer.alloc(0), need: -1, open: true };
    socket.on("data", (chunk) => {
      state.buffer = state.buffer.length ? Buffer.concat([state.buffer, chunk]) : chunk;
      while (state.due !== null) {
        if (state.need < 0) {
          const end = state.buffer.indexOf(HEAD_END);
          if (end < 0) return;
          const head = state.buffer.subarray(0, end).toString("latin1");
          const match = /\r\ncontent-length:\s*(\d+)/i.exec(head);
          state.status = Number(head.slice(9, 12));
          state.closing = /\r\nconnection:\s*close/i.test(head);
          state.headLength = end + 4;
          state.need = state.headLength + (match ? Number(match[1]) : 0);
        }
        if (state.buffer.length < state.need) return;
        const body = state.buffer.subarray(state.headLength, state.need);
        const ok = state.status === 200 && body.indexOf(VALID) >= 0;
        if (!ok) counts.notValid += 1;
        state.buffer = state.buffer.subarray(state.need);
        state.need = -1;
        const due = state.due;
        state.due = null;
        record(due, ok);
        // An answer saying `Connection: close` is the connection's last (the server caps requests
        // per connection): its replacement is opened when it closes, as an HTTP client would.
        if (state.closing) state.open = false;
        else free(state);
      }
    });
    socket.on("error", () => {
      counts.socketErrors += 1;
    });
    socket.on("close", () => {
      state.open = false;
      if (state.due !== null) {
        record(state.due, false);
        state.due = null;
      }
      if (!finished) connections.push(connection()); // replace it, so the pool keeps its size
    });
    socket.on("connect", () => free(state));
    return state;
  }

  function send(state, due) {
    state.due = due;
    counts.sent += 1;
    state.socket.write(payloads[next % payloads.length]);
    next += 1;
  }

  function free(state) {
    if (finished || !state.open) return;
    if (options.rate > 0) {
      if (waiting.length > 0) send(state, waiting.shift());
      else idle.push(state);
    } else if (now() < stopAt) {
      send(state, now());
    }
  }

  const connections = [];
  for (let i = 0; i < options.connections; i += 1) connections.push(connection());

  if (options.rate > 0) {
    const interval = 1000 / options.rate;
    let due = startedAt;
    const tick = () => {
      const at = now();
      while (due <= at && due < stopAt) {
        const state = idle.pop();
        if (state && state.open) send(state, due);
        else waiting.push(due);
        due += interval;
      }
      if (due < stopAt) setTimeout(tick, Math.max(0, Math.min(1, due - now())));
    };
    tick();
  }

  const measureStart = setTimeout(() => {
    cpuAtMeasure.value = process.cpuUsage();
  }, options.warmup * 1000);

  // Answers to requests due before the end get up to 10 s to arrive; then the rest count as errors.
  const check = setInterval(() => {
    const at = now();
    const inFlight = connections.filter((c) => c.due !== null).length + waiting.length;
    if (at >= stopAt && (inFlight === 0 || at >= stopAt + 10000)) {
      clearInterval(check);
      clearTimeout(measureStart);
      finished = true;
      const cpu = process.cpuUsage(cpuAtMeasure.value || undefined);
      const measured = (due) => due !== null && due >= measureFrom && due < stopAt;
      counts.unanswered = connections.filter((c) => measured(c.due)).length;
      counts.unanswered += waiting.filter(measured).length;
      counts.errors += counts.unanswered;
      for (const c of connections) c.socket.destroy();
      latencies.sort((a, b) => a - b);
      const elapsed = (Math.min(now(), stopAt + 10000) - measureFrom) / 1000;
      process.stdout.write(
        JSON.stringify({
          mode: options.rate > 0 ? "open" : "closed",
          rate: options.rate,
          connections: options.connections,
          seconds: options.seconds,
          measured: counts.measured,
          answered: counts.answered,
          achieved: counts.measured / options.seconds,
          errors: counts.errors,
          not_valid: counts.notValid,
          socket_errors: counts.socketErrors,
          unanswered: counts.unanswered,
          p50_ms: percentile(latencies, 0.5),
          p99_ms: percentile(latencies, 0.99),
          p999_ms: percentile(latencies, 0.999),
          max_ms: latencies.length ? latencies[latencies.length - 1] : null,
          cpu_seconds: (cpu.user + cpu.system) / 1e6,
          wall_seconds: elapsed,
        }) + "\n",
      );
    }
  }, 50);
}

run(parseArgs(process.argv.slice(2)));
