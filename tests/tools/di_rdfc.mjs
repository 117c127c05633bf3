// Digital Bazaar's stock eddsa-rdfc-2022 (@digitalbazaar/vc with
// @digitalbazaar/eddsa-rdfc-2022-cryptosuite), offline, for FinVault's interop tests. Its document
// loader serves exactly the JSON-LD contexts FinVault ships (chain/core/contexts/, the URL-to-file
// map is passed in) and resolves did:key locally; any other URL is refused.
// stdin: {"mode": "verify" | "sign", "contexts": {url: path}, "credentials": [...]}.
// verify prints one {verified, error} per credential; sign prints the credentials, each secured
// with a fresh Ed25519 key whose did:key becomes the issuer (a string issuer, or an issuer object's id).
import {readFileSync} from "node:fs";
import * as vc from "@digitalbazaar/vc";
import * as Ed25519Multikey from "@digitalbazaar/ed25519-multikey";
import {DataIntegrityProof} from "@digitalbazaar/data-integrity";
import {cryptosuite as eddsaRdfc2022} from "@digitalbazaar/eddsa-rdfc-2022-cryptosuite";
import {driver as didKeyDriver} from "@digitalbazaar/did-method-key";

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const {mode, contexts, credentials} = JSON.parse(Buffer.concat(chunks).toString("utf8"));
const shelf = new Map(Object.entries(contexts).map(([url, path]) => [url, JSON.parse(readFileSync(path, "utf8"))]));
const didKey = didKeyDriver();
didKey.use({multibaseMultikeyHeader: "z6Mk", fromMultibase: Ed25519Multikey.from});

async function documentLoader(url) {
  if (shelf.has(url)) return {contextUrl: null, documentUrl: url, document: shelf.get(url)};
  if (url.startsWith("did:key:")) return {contextUrl: null, documentUrl: url, document: await didKey.get({url})};
  throw new Error(`refused to load ${url}: not a context FinVault ships`);
}

// This tool judges the proof (which covers a credentialStatus entry like every other field);
// the status itself is status_check.mjs's, against a list served on 127.0.0.1.
const proofOnly = async () => ({verified: true});

const results = [];
for (const credential of credentials) {
  try {
    if (mode === "sign") {
      const key = await Ed25519Multikey.generate();
      key.controller = `did:key:${key.publicKeyMultibase}`;
      key.id = `${key.controller}#${key.publicKeyMultibase}`;
      const unsigned = structuredClone(credential);
      if (typeof unsigned.issuer === "object") unsigned.issuer.id = key.controller;
      else unsigned.issuer = key.controller;
      const suite = new DataIntegrityProof({signer: key.signer(), cryptosuite: eddsaRdfc2022});
      results.push(await vc.issue({credential: unsigned, suite, documentLoader}));
    } else {
      const suite = new DataIntegrityProof({cryptosuite: eddsaRdfc2022});
      const result = await vc.verifyCredential({credential, suite, documentLoader, checkStatus: proofOnly});
      const error = result.verified ? null : result.error?.errors?.[0]?.message ?? result.error?.message;
      results.push({verified: result.verified, error: error === null ? null : String(error)});
    }
  } catch (error) {
    results.push(mode === "sign" ? {error: String(error.message ?? error)} : {verified: false, error: String(error.message ?? error)});
  }
}
process.stdout.write(JSON.stringify(results));
