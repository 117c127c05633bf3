// OpenAttestation's own verifier, the peer of bench/node.py: ms per document, on the same anvil.
//
//   node verify.js RPC_URL COUNT [SECONDS]
//
// Deploys OpenAttestation's DocumentStore (bytecode from the pinned @govtechsg/document-store)
// with anvil's first dev account, wraps COUNT OpenAttestation v2 documents into one Merkle batch
// (@govtechsg/open-attestation wrapDocuments), issues the batch's root on the store, then verifies
// the documents one after another for about SECONDS with @govtechsg/oa-verify against the anvil
// RPC: the verifiers that need no network but the chain (the document's integrity and its issuance
// status on the DocumentStore). DNS identity checks (DNS-TXT, DNS-DID) are OFF: they would ask
// public DNS. Every verification must come back valid. Prints one JSON line.

"use strict";

const { ethers } = require("ethers");
const { DocumentStoreFactory } = require("@govtechsg/document-store");
const { wrapDocuments } = require("@govtechsg/open-attestation");
const {
  verificationBuilder,
  openAttestationHash,
  openAttestationEthereumDocumentStoreStatus,
  isValid,
} = require("@govtechsg/oa-verify");

// Valid means these two fragment types are VALID; ISSUER_IDENTITY (DNS) is not checked.
const CHECKED = ["DOCUMENT_INTEGRITY", "DOCUMENT_STATUS"];
// anvil's first dev account (public, well-known test key; it holds only test ether on a local chain).
const DEV_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";

async function main() {
  const [rpcUrl, countText, secondsText] = process.argv.slice(2);
  const count = Number(countText || 1000);
  const seconds = Number(secondsText || 10);
  const provider = new ethers.providers.JsonRpcProvider(rpcUrl);
  const network = await provider.getNetwork();
  const wallet = new ethers.Wallet(DEV_KEY, provider);
  const store = await new DocumentStoreFactory(wallet).deploy("Bench University", wallet.address);
  await store.deployed();

  const raw = [];
  for (let i = 0; i < count; i += 1) {
    raw.push({
      $template: { name: "CERT", type: "EMBEDDED_RENDERER", url: "https://renderer.example" },
      issuers: [
        {
          name: "Bench University",
          documentStore: store.address,
          identityProof: { type: "DNS-TXT", location: "bench.example" },
        },
      ],
      recipient: { name: `Student ${i}` },
      id: `cert-${i}`,
      course: "Applied Cryptography",
      grade: "A",
      issuedOn: "2026-06-30T00:00:00Z",
    });
  }
  const wrapStarted = process.hrtime.bigint();
  const wrapped = wrapDocuments(raw);
  const wrapSeconds = Number(process.hrtime.bigint() - wrapStarted) / 1e9;
  const root = "0x" + wrapped[0].signature.merkleRoot;
  await (await store.issue(root)).wait();
  await provider.send("anvil_mine", ["0x1"]);

  const verify = verificationBuilder([openAttestationHash, openAttestationEthereumDocumentStoreStatus], {
    provider,
  });
  let done = 0;
  let invalid = 0;
  const started = process.hrtime.bigint();
  const deadline = started + BigInt(Math.round(seconds * 1e9));
  while (process.hrtime.bigint() < deadline || done === 0) {
    const fragments = await verify(wrapped[done % wrapped.length]);
    if (!isValid(fragments, CHECKED)) invalid += 1;
    done += 1;
  }
  const elapsed = Number(process.hrtime.bigint() - started) / 1e9;
  process.stdout.write(
    JSON.stringify({
      chainId: network.chainId,
      documentStore: store.address,
      wrapped: count,
      wrapSeconds,
      verified: done,
      invalid,
      seconds: elapsed,
      msPerDocument: (1000 * elapsed) / done,
    }) + "\n",
  );
}

main().catch((error) => {
  process.stderr.write(`${error.stack || error}\n`);
  process.exit(1);
});
