// npm rdf-canonize (Digital Bazaar's RDFC-1.0, what their Data Integrity verifiers run) as a line
// protocol for FinVault's differential tests: each stdin line is JSON {"nquads", "maxWorkFactor"};
// each stdout line is JSON {"canonical"} or {"error"}. One process serves a whole test run.
import readline from "node:readline";
import canonize from "rdf-canonize";

const lines = readline.createInterface({input: process.stdin, crlfDelay: Infinity});
for await (const line of lines) {
  const {nquads, maxWorkFactor} = JSON.parse(line);  // maxWorkFactor null: unbounded
  let answer;
  try {
    const canonical = await canonize.canonize(nquads, {
      algorithm: "RDFC-1.0",
      inputFormat: "application/n-quads",
      format: "application/n-quads",
      maxWorkFactor: maxWorkFactor === null ? Infinity : maxWorkFactor ?? 1,
    });
    answer = {canonical};
  } catch (error) {
    answer = {error: String(error.message ?? error)};
  }
  process.stdout.write(JSON.stringify(answer) + "\n");
}
