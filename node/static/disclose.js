// Selective disclosure in the browser: withhold fields of a finvault-receipt/1 and keep it valid.
//
// The same rules as the Python core (chain/core/canonical.py, chain/core/disclosure.py), checked
// against the same known-answer vectors (tests/vectors/document-digest.json) by
// tests/unit/test_disclose_js.py: a withheld field's hash, SHA-256 of the RFC 8785 text of
// [pointer, salt, value], moves to `obfuscated`, so the digest, signature, proof and anchor stay as
// they are. Nothing leaves the browser. Loaded by the page as window.FinVaultDisclose, and by Node
// (for the vector test) as a CommonJS module.
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

  var api = {
    canonicalScalar: canonicalScalar,
    flatten: flatten,
    withholdable: withholdable,
    fieldHash: fieldHash,
    disclose: disclose,
  };
  if (typeof module === "object" && module.exports) {
    module.exports = api;
  } else {
    root.FinVaultDisclose = api;
  }
})(typeof globalThis !== "undefined" ? globalThis : this);
