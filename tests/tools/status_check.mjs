// A stock Bitstring Status List checker, for FinVault's tests: @digitalbazaar/vc-bitstring-status-list
// checkStatus, offline but for 127.0.0.1 (vc_loader.mjs): the status list credential is fetched from
// the URL the credential names, and its eddsa-jcs-2022 proof verified. stdin: a JSON array of credentials; stdout: one
// {verified, revoked, error} per credential, as a JSON array.
import {checkStatus} from "@digitalbazaar/vc-bitstring-status-list";
import {DataIntegrityProof} from "@digitalbazaar/data-integrity";
import {createVerifyCryptosuite} from "@digitalbazaar/eddsa-jcs-2022-cryptosuite";
import {documentLoader} from "./vc_loader.mjs";

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
