// An independent SD-JWT verifier for FinVault's tests: @sd-jwt/core (OpenWallet Foundation's
// TypeScript implementation) with @sd-jwt/crypto-nodejs's SHA-256 and WebCrypto verifiers, offline.
// Reads a JSON array of {sdJwt, jwk, alg} (alg "EdDSA" or "RS256") on stdin and prints one
// {verified, payload, header, error} per item, as a JSON array.
import {SDJwtInstance} from "@sd-jwt/core";
import {digest, getVerifier} from "@sd-jwt/crypto-nodejs";

const ALGORITHMS = {
  EdDSA: [{name: "Ed25519"}, {name: "Ed25519"}],
  RS256: [{name: "RSASSA-PKCS1-v1_5", hash: "SHA-256"}, {name: "RSASSA-PKCS1-v1_5"}],
};

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const items = JSON.parse(Buffer.concat(chunks).toString("utf8"));
const results = [];
for (const {sdJwt, jwk, alg} of items) {
  try {
    const [keyAlgorithm, verifyAlgorithm] = ALGORITHMS[alg];
    const verifier = await getVerifier(jwk, keyAlgorithm, verifyAlgorithm);
    const instance = new SDJwtInstance({hasher: digest, hashAlg: "sha-256", verifier});
    const {payload, header} = await instance.verify(sdJwt);
    results.push({verified: header?.alg === alg, payload, header, error: null});
  } catch (error) {
    results.push({verified: false, payload: null, header: null, error: String(error?.message ?? error)});
  }
}
process.stdout.write(JSON.stringify(results));
