// A stock Bitstring Status List checker, for FinVault's tests: @digitalbazaar/vc-bitstring-status-list
// checkStatus, offline but for 127.0.0.1: the status list credential is fetched from the URL the
// credential names, which must be on loopback; its eddsa-jcs-2022 proof is verified (did:key
// resolved locally, contexts from npm). stdin: a JSON array of credentials; stdout: one
// {verified, revoked, error} per credential, as a JSON array.
import {checkStatus} from "@digitalbazaar/vc-bitstring-status-list";
import {DataIntegrityProof} from "@digitalbazaar/data-integrity";
import {createVerifyCryptosuite} from "@digitalbazaar/eddsa-jcs-2022-cryptosuite";
import * as Ed25519Multikey from "@digitalbazaar/ed25519-multikey";
import {driver as didKeyDriver} from "@digitalbazaar/did-method-key";
import {CachedResolver} from "@digitalbazaar/did-io";
import {contexts as credentialContexts} from "@digitalbazaar/credentials-context";
import {JsonLdDocumentLoader} from "jsonld-document-loader";

const didKey = didKeyDriver();
didKey.use({multibaseMultikeyHeader: "z6Mk", fromMultibase: Ed25519Multikey.from});
const resolver = new CachedResolver();
resolver.use(didKey);
const loader = new JsonLdDocumentLoader();
loader.addDocuments({documents: [...credentialContexts]});
loader.setDidResolver(resolver);
const offline = loader.build();

async function documentLoader(url) {
  const {hostname, protocol} = new URL(url);
  if (protocol === "http:" && hostname === "127.0.0.1") {
    const response = await fetch(url);
    if (!response.ok) throw new Error(`GET ${url}: ${response.status}`);
    return {contextUrl: null, documentUrl: url, document: await response.json()};
  }
  return offline(url);
}

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const results = [];
for (const credential of JSON.parse(Buffer.concat(chunks).toString("utf8"))) {
  const suite = new DataIntegrityProof({cryptosuite: createVerifyCryptosuite()});
  const result = await checkStatus({credential, documentLoader, suite, verifyBitstringStatusListCredential: true});
  const error = result.error ? String(result.error.message ?? result.error) : null;
  results.push({verified: result.verified, revoked: result.verified ? result.results[0].status : null, error});
}
process.stdout.write(JSON.stringify(results));
