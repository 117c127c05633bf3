// The document loader FinVault's Node test verifiers share: JSON-LD contexts from npm, did:key
// resolved locally, and documents on http://127.0.0.1 (a status list an issuer API serves) fetched;
// anything else is refused, so no test reaches the network.
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

export async function documentLoader(url) {
  const {hostname, protocol} = new URL(url);
  if (protocol === "http:" && hostname === "127.0.0.1") {
    const response = await fetch(url);
    if (!response.ok) throw new Error(`GET ${url}: ${response.status}`);
    return {contextUrl: null, documentUrl: url, document: await response.json()};
  }
  return offline(url);
}
