// Selective disclosure in the browser: withhold claims of a receipt and keep it valid.
//
// - finvault-receipt/2 with an SD-JWT (RFC 9901): the payload is reconstructed as section 7.1 says
//   (disclosures in place of their digests in `_sd` arrays and `{"...": digest}` array elements,
//   recursively; undisclosed elements removed), and withholding a claim drops its disclosure and
//   every disclosure nested in it (section 7.2), as chain/core/sd_jwt.py does: the issuer-signed
//   JWT, and so the leaf, proof and anchor, stay as they are. The node verifies the result; this
//   file checks only what it needs to rebuild the payload.
// - finvault-receipt/1 (legacy): the same rules as chain/core/canonical.py and
//   chain/core/disclosure.py, checked against tests/vectors/document-digest.json: a withheld
//   field's hash, SHA-256 of the RFC 8785 text of [pointer, salt, value], moves to `obfuscated`.
//
// tests/unit/test_disclose_js.py holds both to the Python core. Nothing leaves the browser.
// Loaded by the page as window.FinVaultDisclose, and by Node (for the tests) as a CommonJS module.
"use strict";

(function (root) {
  function isObject(value) {
    return value !== null && typeof value === "object" && !Array.isArray(value);
  }

  function escapeToken(token) {
    return token.replace(/~/g, "~0").replace(/\//g, "~1");
  }

  // RFC 8785 text of one leaf (a scalar, [] or {}). JSON.stringify writes strings and numbers
  // exactly as RFC 8785 does (ECMAScript number formatting is what RFC 8785 adopted).
  function canonicalScalar(value, pointer) {
    if (Array.isArray(value)) return "[]";
    if (isObject(value)) return "{}";
    if (typeof value === "number" && !isFinite(value)) throw new Error(pointer + ": not a JSON number");
    return JSON.stringify(value);
  }

  // [[pointer, canonical value text]] for every leaf, in document order.
  function flatten(node, pointer, out) {
    if (Array.isArray(node) && node.length) {
      node.forEach(function (child, index) {
        flatten(child, pointer + "/" + index, out);
      });
    } else if (isObject(node) && Object.keys(node).length) {
      Object.keys(node).forEach(function (key) {
        flatten(node[key], pointer + "/" + escapeToken(key), out);
      });
    } else if (pointer !== "") {
      out.push([pointer, canonicalScalar(node, pointer)]);
    }
    return out;
  }

  // Every pointer a holder may withhold, in document order: objects, arrays and leaves, but not
  // the elements of an array themselves (their fields are listed).
  function withholdable(credential) {
    var out = [];
    function walk(node, pointer, element) {
      if (pointer && !element) out.push(pointer);
      if (Array.isArray(node)) {
        node.forEach(function (child, index) {
          walk(child, pointer + "/" + index, true);
        });
      } else if (isObject(node)) {
        Object.keys(node).forEach(function (key) {
          walk(node[key], pointer + "/" + escapeToken(key), false);
        });
      }
    }
    walk(credential, "", false);
    return out;
  }

  var GONE = {};

  // object[key] = value as JSON.parse would: an own property whatever the key. A plain assignment
  // to "__proto__" sets the prototype instead (or, for a string, does nothing), which dropped a
  // credential's "__proto__" field while its salt stayed: a receipt that no longer verified.
  function setOwn(object, key, value) {
    Object.defineProperty(object, key, { value: value, enumerable: true, writable: true, configurable: true });
  }

  // node minus the hidden pointers; containers left empty by hiding disappear (not the document).
  function without(node, pointer, hidden) {
    if (hidden.has(pointer)) return GONE;
    if (isObject(node) && Object.keys(node).length) {
      var kept = {};
      Object.keys(node).forEach(function (key) {
        var result = without(node[key], pointer + "/" + escapeToken(key), hidden);
        if (result !== GONE) setOwn(kept, key, result);
      });
      return Object.keys(kept).length || !pointer ? kept : GONE;
    }
    if (Array.isArray(node) && node.length) {
      return node.map(function (child, index) {
        var result = without(child, pointer + "/" + index, hidden);
        if (result === GONE) {
          throw new Error(
            pointer + "/" + index + ": array elements cannot be hidden one by one; hide the whole array"
          );
        }
        return result;
      });
    }
    return node;
  }

  function hex(buffer) {
    return Array.prototype.map
      .call(new Uint8Array(buffer), function (byte) {
        return ("0" + byte.toString(16)).slice(-2);
      })
      .join("");
  }

  function sha256Hex(text, subtle) {
    return subtle.digest("SHA-256", new TextEncoder().encode(text)).then(function (digest) {
      return "0x" + hex(digest);
    });
  }

  function fieldHash(pointer, salt, valueText, subtle) {
    return sha256Hex("[" + JSON.stringify(pointer) + ',"' + salt + '",' + valueText + "]", subtle);
  }

  // The receipt without `pointers` (checked first: an unknown pointer, one element of an array or
  // the whole document is refused). Resolves to a new receipt object; the input is not changed.
  function disclose(receipt, pointers, subtle) {
    subtle = subtle || root.crypto.subtle;
    var credential = receipt.credential;
    var allowed = new Set(withholdable(credential));
    var leaves = flatten(credential, "", []);
    var hidden = new Set();
    var problem = null;
    if (!pointers.length) problem = "choose at least one field to withhold";
    pointers.forEach(function (pointer) {
      if (problem) return;
      if (!allowed.has(pointer)) {
        problem = pointer + ": not a field that can be withheld (unknown, already withheld, or one element of an array)";
        return;
      }
      leaves.forEach(function (leaf) {
        if (leaf[0] === pointer || leaf[0].indexOf(pointer + "/") === 0) hidden.add(leaf[0]);
      });
    });
    if (problem) return Promise.reject(new Error(problem));
    var targets = new Set(hidden);
    pointers.forEach(function (pointer) {
      targets.add(pointer);
    });
    var smaller;
    try {
      smaller = without(credential, "", targets);
    } catch (error) {
      return Promise.reject(error);
    }
    var salts = receipt.salts || {};
    var hashing = leaves
      .filter(function (leaf) {
        return hidden.has(leaf[0]);
      })
      .map(function (leaf) {
        if (typeof salts[leaf[0]] !== "string") throw new Error(leaf[0] + ": the receipt has no salt for it");
        return fieldHash(leaf[0], salts[leaf[0]], leaf[1], subtle);
      });
    return Promise.all(hashing).then(function (hashes) {
      var keptSalts = {};
      Object.keys(salts).forEach(function (pointer) {
        if (!hidden.has(pointer)) setOwn(keptSalts, pointer, salts[pointer]);
      });
      var out = {
        format: receipt.format,
        credential: smaller,
        salts: keptSalts,
        obfuscated: (receipt.obfuscated || []).concat(hashes).sort(),
        digest: receipt.digest,
        signature: receipt.signature,
        proof: receipt.proof,
        anchor: receipt.anchor,
      };
      if (receipt.link !== undefined && receipt.link !== null) out.link = receipt.link;
      return out;
    });
  }

  // -- finvault-receipt/2: SD-JWT (RFC 9901) ----------------------------------------------------

  var B64URL = /^[A-Za-z0-9_-]*$/;

  function fromB64url(text, what) {
    if (typeof text !== "string" || text.length % 4 === 1 || !B64URL.test(text)) {
      throw new Error(what + " is not base64url");
    }
    var binary = root.atob(text.replace(/-/g, "+").replace(/_/g, "/"));
    var bytes = new Uint8Array(binary.length);
    for (var i = 0; i < binary.length; i += 1) bytes[i] = binary.charCodeAt(i);
    return bytes;
  }

  function toB64url(buffer) {
    var bytes = new Uint8Array(buffer);
    var binary = "";
    for (var i = 0; i < bytes.length; i += 1) binary += String.fromCharCode(bytes[i]);
    return root.btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function jsonOf(text, what) {
    try {
      return JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(fromB64url(text, what)));
    } catch (error) {
      throw new Error(what + " is not base64url JSON");
    }
  }

  // The SD-JWT split and decoded: {jwt, payload, disclosures: [{text, name, value}]}.
  function parseSdJwt(sdJwt) {
    if (typeof sdJwt !== "string" || sdJwt.slice(-1) !== "~") {
      throw new Error("not an SD-JWT without key binding (<JWT>~<D1>~...~)");
    }
    var parts = sdJwt.split("~");
    var segments = parts[0].split(".");
    if (segments.length !== 3) throw new Error("the issuer-signed JWT is not a compact JWS");
    var payload = jsonOf(segments[1], "the JWT payload");
    if (!isObject(payload)) throw new Error("the JWT payload is not a JSON object");
    var disclosures = parts.slice(1, -1).map(function (text, index) {
      var what = "disclosure " + (index + 1);
      var content = jsonOf(text, what);
      if (!Array.isArray(content) || (content.length !== 2 && content.length !== 3)) {
        throw new Error(what + " is not [salt, name, value] or [salt, value]");
      }
      if (content.length === 2) return { text: text, name: null, value: content[1] };
      if (typeof content[1] !== "string") throw new Error(what + ": the claim name must be a string");
      return { text: text, name: content[1], value: content[2] };
    });
    return { jwt: parts[0], payload: payload, disclosures: disclosures };
  }

  // Resolves to {jwt, disclosures, payload, claims}: the reconstructed payload (RFC 9901 7.1) and,
  // per disclosure, where it landed: claims[i] = {pointer, parent (index or null)}, pointers into
  // the reconstructed payload (an array element's index counts only the elements disclosed).
  function processSdJwt(sdJwt, subtle) {
    subtle = subtle || root.crypto.subtle;
    var parsed;
    try {
      parsed = parseSdJwt(sdJwt);
    } catch (error) {
      return Promise.reject(error);
    }
    var hashing = parsed.disclosures.map(function (disclosure) {
      return subtle.digest("SHA-256", new TextEncoder().encode(disclosure.text)).then(toB64url);
    });
    return Promise.all(hashing).then(function (digests) {
      var byDigest = new Map();
      digests.forEach(function (digest, index) {
        if (byDigest.has(digest)) throw new Error("the same disclosure appears twice");
        byDigest.set(digest, index);
      });
      var claims = parsed.disclosures.map(function () {
        return null;
      });

      function claim(digest, pointer, parent) {
        var index = typeof digest === "string" ? byDigest.get(digest) : undefined;
        if (index === undefined) return -1; // a decoy, or a claim the holder withheld
        if (claims[index]) throw new Error("disclosure " + (index + 1) + " is referenced twice");
        claims[index] = { pointer: pointer, parent: parent };
        return index;
      }

      function walk(node, pointer, parent) {
        if (Array.isArray(node)) {
          var elements = [];
          node.forEach(function (item) {
            if (isObject(item) && Object.prototype.hasOwnProperty.call(item, "...")) {
              var at = pointer + "/" + elements.length;
              var index = claim(item["..."], at, parent);
              if (index < 0) return;
              var found = parsed.disclosures[index];
              if (found.name !== null) throw new Error("disclosure " + (index + 1) + " is a claim, found in an array");
              elements.push(walk(found.value, at, index));
            } else {
              elements.push(walk(item, pointer + "/" + elements.length, parent));
            }
          });
          return elements;
        }
        if (!isObject(node)) return node;
        var out = {};
        Object.keys(node).forEach(function (key) {
          if (key !== "_sd") setOwn(out, key, walk(node[key], pointer + "/" + escapeToken(key), parent));
        });
        (Array.isArray(node._sd) ? node._sd : []).forEach(function (digest) {
          var found = parsed.disclosures[byDigest.get(digest)];
          if (!found) return;
          if (found.name === null) throw new Error("an array element's disclosure is found in '_sd'");
          if (Object.prototype.hasOwnProperty.call(out, found.name)) {
            throw new Error("disclosure of " + JSON.stringify(found.name) + " repeats a claim");
          }
          var at = pointer + "/" + escapeToken(found.name);
          setOwn(out, found.name, walk(found.value, at, claim(digest, at, parent)));
        });
        return out;
      }

      var body = {};
      Object.keys(parsed.payload).forEach(function (key) {
        if (key !== "_sd_alg") setOwn(body, key, parsed.payload[key]);
      });
      var payload = walk(body, "", null);
      if (claims.indexOf(null) >= 0) throw new Error("a disclosure is not referenced by the issuer-signed JWT");
      return { jwt: parsed.jwt, disclosures: parsed.disclosures, payload: payload, claims: claims };
    });
  }

  // Resolves to the SD-JWT without the disclosures of `pointers` (into the payload it
  // reconstructs) and without every disclosure nested inside them. An unknown pointer is refused.
  function withholdSdJwt(sdJwt, pointers, subtle) {
    return processSdJwt(sdJwt, subtle).then(function (processed) {
      var indexOf = new Map();
      processed.claims.forEach(function (claim, index) {
        indexOf.set(claim.pointer, index);
      });
      var dropped = new Set();
      pointers.forEach(function (pointer) {
        if (!indexOf.has(pointer)) throw new Error(pointer + ": names no selectively disclosed claim here");
        dropped.add(indexOf.get(pointer));
      });
      function withheld(index) {
        for (var current = index; current !== null; current = processed.claims[current].parent) {
          if (dropped.has(current)) return true;
        }
        return false;
      }
      var kept = processed.disclosures
        .filter(function (disclosure, index) {
          return !withheld(index);
        })
        .map(function (disclosure) {
          return disclosure.text;
        });
      return [processed.jwt].concat(kept, [""]).join("~");
    });
  }

  // The finvault-receipt/2 receipt with `pointers` withheld from its SD-JWT: the same receipt
  // (proof and anchor untouched) with a smaller credential. A Data Integrity credential is refused.
  function discloseV2(receipt, pointers, subtle) {
    if (typeof receipt.credential !== "string") {
      return Promise.reject(
        new Error("a Data Integrity credential is signed whole: no claim can be withheld from it")
      );
    }
    if (!pointers.length) return Promise.reject(new Error("choose at least one claim to withhold"));
    return withholdSdJwt(receipt.credential, pointers, subtle).then(function (smaller) {
      return { format: receipt.format, credential: smaller, proof: receipt.proof, anchor: receipt.anchor };
    });
  }

  var api = {
    canonicalScalar: canonicalScalar,
    flatten: flatten,
    withholdable: withholdable,
    fieldHash: fieldHash,
    disclose: disclose,
    processSdJwt: processSdJwt,
    withholdSdJwt: withholdSdJwt,
    discloseV2: discloseV2,
  };
  if (typeof module === "object" && module.exports) {
    module.exports = api;
  } else {
    root.FinVaultDisclose = api;
  }
})(typeof globalThis !== "undefined" ? globalThis : this);
