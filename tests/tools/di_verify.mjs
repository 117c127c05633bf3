// A stock W3C Verifiable Credentials verifier, for FinVault's tests: @digitalbazaar/vc with the
// eddsa-jcs-2022 cryptosuite, offline (the VC 2.0 context is vendored in its npm package; did:key
// is resolved locally). Prints one {verified, error} per credential, as a JSON array.
import {readFileSync} from "node:fs";
import * as vc from "@digitalbazaar/vc";
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
const documentLoader = loader.build();

// Receipt or credential files as arguments (a receipt's credential is taken: a /2 receipt's must be
// a Data Integrity credential, not an SD-JWT), else a JSON array on stdin.
let credentials;
if (process.argv.length > 2) {
  credentials = process.argv.slice(2).map((path) => {
    const document = JSON.parse(readFileSync(path, "utf8"));
    const receipt = ["finvault-receipt/1", "finvault-receipt/2"].includes(document.format);
    return receipt ? document.credential : document;
  });
} else {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  credentials = JSON.parse(Buffer.concat(chunks).toString("utf8"));
}
const results = [];
for (const credential of credentials) {
  try {
    const suite = new DataIntegrityProof({cryptosuite: createVerifyCryptosuite()});
    const result = await vc.verifyCredential({credential, suite, documentLoader});
    const error = result.verified ? null : result.error?.errors?.[0]?.message ?? result.error?.message;
    results.push({verified: result.verified, error: error === null ? null : String(error)});
  } catch (error) {
    results.push({verified: false, error: String(error.message ?? error)});
  }
}
process.stdout.write(JSON.stringify(results));
