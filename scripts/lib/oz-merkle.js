#!/usr/bin/env node
// Reference answers from @openzeppelin/merkle-tree's StandardMerkleTree for leaf encoding ["bytes32"].
//
// stdin:  {"sets": [["0x<digest>", ...], ...], "multiproofs": [[valueIndex, ...], ...]}
//         (one multiproof index list per set; indices are value indices into that set)
// stdout: {"library": "@openzeppelin/merkle-tree@<version>",
//          "results": [{"root": "0x..", "proofs": [["0x..", ...], ...],   // getProof(i) for every i
//                       "multiproof": {"leaves": ["0x<digest>", ...], "proof": [...], "proofFlags": [...]}}]}
//
// Every set is answered in one process, so the Python tests pay node's start-up once.
// Works from any cwd: the library is loaded from $FINVAULT_NODE_MODULES when set (this is what
// chain.dev.toolchain.node_modules() honours), otherwise by normal resolution from this file, which
// finds the repo's node_modules (and $NODE_PATH).
'use strict';

const fs = require('fs');
const path = require('path');

function load(name) {
  const root = process.env.FINVAULT_NODE_MODULES;
  return require(root ? path.join(path.resolve(root), name) : name);
}

function packageVersion() {
  const root = process.env.FINVAULT_NODE_MODULES;
  const file = root
    ? path.join(path.resolve(root), '@openzeppelin', 'merkle-tree', 'package.json')
    : require.resolve('@openzeppelin/merkle-tree/package.json');
  return JSON.parse(fs.readFileSync(file, 'utf8')).version;
}

function fail(message) {
  process.stderr.write(`oz-merkle: ${message}\n`);
  process.exit(1);
}

function main() {
  const { StandardMerkleTree } = load('@openzeppelin/merkle-tree');
  let request;
  try {
    request = JSON.parse(fs.readFileSync(0, 'utf8'));
  } catch (err) {
    fail(`stdin is not JSON: ${err.message}`);
  }
  const sets = request.sets;
  const multiproofs = request.multiproofs || [];
  if (!Array.isArray(sets)) fail('"sets" must be an array of digest arrays');
  if (multiproofs.length !== 0 && multiproofs.length !== sets.length) {
    fail(`"multiproofs" has ${multiproofs.length} entries for ${sets.length} sets`);
  }

  const results = sets.map((digests, s) => {
    const tree = StandardMerkleTree.of(digests.map((d) => [d]), ['bytes32']);
    const proofs = digests.map((_, i) => tree.getProof(i));
    const result = { root: tree.root, proofs };
    if (multiproofs.length) {
      const mp = tree.getMultiProof(multiproofs[s].slice());
      result.multiproof = { leaves: mp.leaves.map((v) => v[0]), proof: mp.proof, proofFlags: mp.proofFlags };
    }
    return result;
  });
  process.stdout.write(
    JSON.stringify({ library: `@openzeppelin/merkle-tree@${packageVersion()}`, results }) + '\n',
  );
}

try {
  main();
} catch (err) {
  fail(err && err.stack ? err.stack : String(err));
}
