// The indexing peer of bench/indexer.py: the loop a developer writes instead of `finvault sync`.
//
//   node sync.mjs --rpc URL --registry ADDR --from N --to M --db FILE
//
// viem's getLogs over the registry's events in block chunks (decodeEventLog on every log), each
// chunk inserted into SQLite (better-sqlite3, WAL) in one transaction. The chunk policy is
// FinVault's (indexer/fetch.py AdaptiveRange): 16 blocks to start, doubled after every answer of
// at most 5,000 logs, kept between 5,000 and 10,000, shrunk in proportion above. It keeps no
// parent hashes and checks no accumulator: those are what FinVault adds. Prints one JSON line.
import { readFileSync } from "node:fs";
import Database from "better-sqlite3";
import { createPublicClient, http } from "viem";

const options = Object.fromEntries(
  process.argv.slice(2).reduce((pairs, arg, i, all) => (i % 2 ? pairs : [...pairs, [arg.slice(2), all[i + 1]]]), []),
);
const artifact = JSON.parse(readFileSync(new URL("../../../chain/artifacts/FinVaultRegistry.json", import.meta.url)));
// The events FinVault mirrors: all but the ownership hand-over ones.
const events = artifact.abi.filter((item) => item.type === "event" && !item.name.startsWith("Ownership"));
// FinVault's reader sets no cap on an answer's size (its chunk policy bounds it); neither does this.
const transport = http(options.rpc, { timeout: 600_000, maxResponseBodySize: 2 ** 30 });
const client = createPublicClient({ transport });

const db = new Database(options.db);
db.pragma("journal_mode = WAL");
db.pragma("synchronous = NORMAL");
db.exec(`CREATE TABLE IF NOT EXISTS events (
  block_number INTEGER NOT NULL, block_hash TEXT NOT NULL, tx_hash TEXT NOT NULL,
  log_index INTEGER NOT NULL, event TEXT NOT NULL, args TEXT NOT NULL,
  PRIMARY KEY (block_number, log_index))`);
const insert = db.prepare("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?)");
const json = (args) => JSON.stringify(args, (_, value) => (typeof value === "bigint" ? value.toString() : value));
const store = db.transaction((logs) => {
  for (const log of logs) {
    insert.run(Number(log.blockNumber), log.blockHash, log.transactionHash, log.logIndex, log.eventName, json(log.args));
  }
});

const started = performance.now();
let size = 16n;
let count = 0;
for (let first = BigInt(options.from), last = BigInt(options.to); first <= last; ) {
  const end = first + size - 1n < last ? first + size - 1n : last;
  const logs = await client.getLogs({ address: options.registry, events, fromBlock: first, toBlock: end, strict: true });
  store(logs);
  count += logs.length;
  first = end + 1n;
  if (logs.length > 10_000) size = (size * 10_000n) / BigInt(logs.length) || 1n;
  else if (logs.length <= 5_000) size = size * 2n < 50_000n ? size * 2n : 50_000n;
}
db.close();
console.log(JSON.stringify({ events: count, seconds: (performance.now() - started) / 1000 }));
