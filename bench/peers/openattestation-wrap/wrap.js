// bench/issuer.py's peer: OpenAttestation v2 wrapDocuments (salt every field, hash, one Merkle
// tree over the batch; no signature, no chain) on COUNT degree documents shaped like FinVault's.
// Prints one JSON line: {"documents": COUNT, "seconds": wall time of wrapDocuments alone}.
"use strict";
const { wrapDocuments } = require("@govtechsg/open-attestation");

const count = Number(process.argv[2] || "10000");
const documents = [];
for (let i = 0; i < count; i++) {
  documents.push({
    $template: { name: "degree", type: "EMBEDDED_RENDERER", url: "https://renderer.example" },
    issuers: [
      {
        name: "Bench University",
        documentStore: "0x" + "12".repeat(20),
        identityProof: { type: "DNS-TXT", location: "bench.example" },
      },
    ],
    id: `cert-${String(i).padStart(5, "0")}`,
    recipient: { name: `Student ${i}` },
    degree: "MSc Data Science",
    grade: "A",
    credits: 120,
    issued: "2026-07-01",
    graduated: "2026-06-30",
  });
}
const started = process.hrtime.bigint();
const wrapped = wrapDocuments(documents);
const seconds = Number(process.hrtime.bigint() - started) / 1e9;
if (wrapped.length !== count || !wrapped[0].signature.merkleRoot) throw new Error("wrapDocuments failed");
console.log(JSON.stringify({ documents: count, seconds }));
