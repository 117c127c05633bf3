// A stock W3C Verifiable Credentials verifier, for FinVault's tests: @digitalbazaar/vc with the
// eddsa-jcs-2022 cryptosuite, offline (vc_loader.mjs: contexts from npm, did:key resolved locally; a
// credential's status list fetched only from 127.0.0.1, and checked with
// @digitalbazaar/vc-bitstring-status-list). Prints one {verified, error} per credential, as a JSON array.
import {readFileSync} from "node:fs";
import * as vc from "@digitalbazaar/vc";
import {DataIntegrityProof} from "@digitalbazaar/data-integrity";
import {createVerifyCryptosuite} from "@digitalbazaar/eddsa-jcs-2022-cryptosuite";
import {checkStatus} from "@digitalbazaar/vc-bitstring-status-list";
import {documentLoader} from "./vc_loader.mjs";

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
    const result = await vc.verifyCredential({credential, suite, documentLoader, checkStatus});
    const error = result.verified
      ? null
      : result.error?.errors?.[0]?.message ?? result.error?.message ?? result.statusResult?.error?.message;
    results.push({verified: result.verified, error: error === null ? null : String(error)});
  } catch (error) {
    results.push({verified: false, error: String(error.message ?? error)});
  }
}
process.stdout.write(JSON.stringify(results));
