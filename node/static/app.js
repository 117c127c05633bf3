// The node's web page: read a receipt file (finvault-receipt/2, or a legacy /1), POST it to
// /verify, show the verdict and the credential as disclosed, and let the holder share less.
//
// Everything from a receipt or a verdict is written with textContent, never parsed as HTML: a
// receipt is untrusted input, and the page's Content-Security-Policy forbids inline script anyway.
"use strict";

(function () {
  // Same bound as the node (chain.receipt.MAX_RECEIPT_BYTES): refuse before reading a huge file.
  var MAX_RECEIPT_BYTES = 512 * 1024;
  var REQUEST_TIMEOUT_MS = 30000;
  var LINK_PATH = /^\/v\/(0x[0-9a-fA-F]{64})\/?$/;
  // RFC 5280 CRL reasons the registry accepts, plus issuedInError (11).
  var REASONS = {
    0: "unspecified",
    1: "key compromise",
    3: "affiliation changed",
    4: "superseded",
    5: "cessation of operation",
    9: "privilege withdrawn",
    11: "issued in error",
  };
  var STATUS_CLASS = {
    VALID: "banner-valid",
    PENDING: "banner-pending",
    REVOKED: "banner-revoked",
    INVALID: "banner-invalid",
    ERROR: "banner-error",
    UNVOUCHED: "banner-unvouched",
    WORKING: "banner-idle",
    idle: "banner-idle",
  };
  // The issuer's did:web, as the node checked it (advisory: it never changes the verdict).
  // The location is shown as the node fetched it: host AND path, ASCII (punycode for an
  // internationalized host, its Unicode form beside it), so "uni.example/ok" never reads as
  // "uni.example", nor a Cyrillic look-alike as Latin.
  var IDENTITY_TEXT = {
    verified: ["verified (its did.json names this issuer's account)", "good"],
    mismatch: ["NOT verified: its did.json does not name this issuer's account", "bad"],
    unreachable: ["could not be checked (no usable did.json came back in time)", "warn"],
    refused: ["not checked: this node's did:web rules refuse to fetch it", "warn"],
  };
  // An Open Badge 3.0 is a credential of one of these types; its image is shown only when the
  // credential carries it (a data: URI). A remote image is named as text and never fetched: opening
  // a receipt must not tell another server who looked at it.
  var BADGE_TYPES = ["OpenBadgeCredential", "AchievementCredential"];
  var DATA_IMAGE = /^data:image\/[a-z0-9.+-]+[;,]/i;
  var OUTCOME_LABEL = { pass: "\u2713 pass", fail: "\u2717 fail", skip: "\u2013 skipped" };

  var $ = function (id) {
    return document.getElementById(id);
  };
  var linkMatch = LINK_PATH.exec(window.location.pathname);
  var linkLeaf = linkMatch ? linkMatch[1].toLowerCase() : null;
  var requestSeq = 0;

  // -- small DOM helpers ------------------------------------------------------------------------

  function el(tag, text, className) {
    var node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (className) node.className = className;
    return node;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
  }

  // rows: [label, value, options]; value is text or a Node; options.mono for hashes and addresses.
  function setFacts(dl, rows) {
    clear(dl);
    rows.forEach(function (row) {
      var dt = el("dt", row[0]);
      var dd = document.createElement("dd");
      var options = row[2] || {};
      if (row[1] instanceof Node) dd.appendChild(row[1]);
      else dd.textContent = row[1] === undefined || row[1] === null ? "\u2014" : String(row[1]);
      if (options.mono) dd.classList.add("hash");
      if (options.className) dd.classList.add(options.className);
      if (options.key) dd.setAttribute("data-fact", options.key);
      dl.appendChild(dt);
      dl.appendChild(dd);
    });
  }

  function isObject(value) {
    return value !== null && typeof value === "object" && !Array.isArray(value);
  }

  function yesNo(value) {
    return value ? "yes" : "no";
  }

  function reasonName(code) {
    var name = Object.prototype.hasOwnProperty.call(REASONS, code) ? REASONS[code] : "reason";
    return name + " (code " + code + ")";
  }

  // -- the credential: its leaves by RFC 6901 pointer (disclose.js, the core's rules), for people ----

  function displayFields(credential) {
    return window.FinVaultDisclose.flatten(credential, "", []).map(function (pair) {
      return [pair[0], pair[1].charAt(0) === '"' ? JSON.parse(pair[1]) : pair[1]];
    });
  }

  function identityLocation(identity) {
    var where = identity.location || identity.domain || "";
    if (identity.unicode_location) {
      where += " (in Unicode: " + identity.unicode_location + "; not plain ASCII, may imitate another name)";
    }
    return where;
  }

  function identityFact(identity) {
    if (identity.reason === "did_invalid") {
      return ["not a valid did:web: " + String(identity.did).slice(0, 120) + " (not fetched)", "bad"];
    }
    var text = IDENTITY_TEXT[identity.status];
    if (!text) return null;
    var reason = identity.status !== "verified" && identity.reason ? " [" + identity.reason + "]" : "";
    return [identityLocation(identity) + ": " + text[0] + reason, text[1]];
  }

  // A mismatch is as visible as the verdict: a line in the banner, as large as the status.
  function setBannerIdentity(identity) {
    var line = $("banner-identity");
    var mismatch = isObject(identity) && identity.status === "mismatch";
    $("banner").setAttribute("data-identity", isObject(identity) ? String(identity.status) : "none");
    line.hidden = !mismatch;
    line.textContent = mismatch
      ? "IDENTITY MISMATCH: " + identityLocation(identity) +
        " does not name the account that anchored this receipt"
      : "";
  }

  function setBanner(status, headline, summary, asOf) {
    setBannerIdentity(null);
    var banner = $("banner");
    banner.className = "banner " + (STATUS_CLASS[status] || "banner-error");
    banner.setAttribute("data-status", status);
    $("banner-status").textContent = headline;
    $("banner-summary").textContent = summary;
    var line = $("banner-as-of");
    line.textContent = asOf || "";
    line.hidden = !asOf;
  }

  // The mirror state a verdict was judged at (as_of), in words. Without a verdict, only where the
  // mirror stands: how far behind the chain it is means nothing while it cannot vouch.
  function describeAsOf(asOf, vouched) {
    if (!isObject(asOf)) return "";
    var where = " " + asOf.block_number + " (" + asOf.block_hash + ", " + asOf.block_time + ")";
    if (!vouched) return "This node's mirror is at block" + where + ".";
    var lag = typeof asOf.lag_seconds === "number"
      ? Math.round(asOf.lag_seconds) + " s behind the chain"
      : "not yet at the chain head";
    return "Checked against block" + where + ", " + lag + ".";
  }

  function failing(verdict) {
    return (verdict.checks || []).filter(function (check) {
      return check.outcome === "fail";
    });
  }

  function checkNamed(verdict, name) {
    return (verdict.checks || []).filter(function (check) {
      return check.name === name;
    })[0];
  }

  function showVerdictBanner(verdict) {
    var issuer = verdict.issuer ? verdict.issuer.name : "the issuer";
    var anchor = verdict.anchor;
    var revocation = verdict.revocation;
    if (verdict.status === "VALID") {
      setBanner(
        "VALID",
        "VALID",
        "Genuine: issued by " + issuer + ", anchored on the chain with " +
          (anchor ? anchor.confirmations : "?") + " confirmations (final), and not revoked."
      );
    } else if (verdict.status === "PENDING") {
      var finality = checkNamed(verdict, "finality");
      setBanner(
        "PENDING",
        "PENDING",
        "Anchored by " + issuer + " but not final yet" +
          (finality && finality.detail ? ": " + finality.detail : "") + ". Check again later."
      );
    } else if (verdict.status === "REVOKED") {
      var what = revocation && revocation.scope === "root" ? "its whole batch" : "this certificate";
      setBanner(
        "REVOKED",
        "REVOKED",
        revocation
          ? "Revoked: " + reasonName(revocation.reason) + ". " + issuer + " revoked " + what +
              " in block " + revocation.block_number + " at " + revocation.revoked_at + "."
          : "Revoked."
      );
    } else if (verdict.status === "INVALID") {
      var failed = failing(verdict);
      var first = failed[0];
      setBanner(
        "INVALID",
        "INVALID",
        "Not genuine: " + (verdict.reasons || []).join(", ") +
          (first && first.detail ? " \u2014 " + first.detail : "") + "."
      );
    } else {
      setBanner("ERROR", "ERROR", "The node answered with an unknown status.");
    }
  }

  // -- the details ------------------------------------------------------------------------------

  function renderIssuer(verdict, receipt) {
    var issuer = verdict.issuer;
    if (issuer) {
      var rows = [
        ["Name", issuer.name, { key: "issuer-name" }],
        ["Address", issuer.address, { mono: true, key: "issuer-address" }],
        ["Web site", issuer.uri || "\u2014", { key: "issuer-uri" }],
        ["Active", yesNo(issuer.active), { key: "issuer-active" }],
      ];
      var shown = isObject(verdict.identity) ? identityFact(verdict.identity) : null;
      if (shown) {
        rows.push(["Domain (did:web)", shown[0], { className: shown[1], key: "issuer-domain" }]);
      }
      setFacts($("issuer"), rows);
      return;
    }
    var claimed = receipt && isObject(receipt.anchor) ? receipt.anchor.issuer : null;
    setFacts($("issuer"), [
      ["Confirmed", "no: the node could not confirm an issuer for this receipt", {
        className: "bad", key: "issuer-name" }],
      ["Claimed address", claimed, { mono: true, key: "issuer-address" }],
    ]);
  }

  function renderDates(verdict, credential) {
    var c = isObject(credential) ? credential : {};
    var until = c.validUntil !== undefined ? c.validUntil : c.expirationDate;
    var expiry = checkNamed(verdict, "expiry");
    setFacts($("dates"), [
      ["Valid from", c.validFrom !== undefined ? c.validFrom : "not disclosed", { key: "valid-from" }],
      ["Valid until", until !== undefined ? until : "no expiry disclosed", { key: "valid-until" }],
      ["Expiry check", expiry ? expiry.outcome + (expiry.detail ? ": " + expiry.detail : "") : null, {
        key: "expiry" }],
      ["Judged at", verdict.checked_at, { key: "checked-at" }],
    ]);
  }

  function renderAnchor(verdict, receipt) {
    var anchor = verdict.anchor;
    var evidence = verdict.evidence || {};
    if (anchor) {
      var finality = checkNamed(verdict, "finality");
      setFacts($("anchor"), [
        ["Transaction", anchor.tx_hash, { mono: true, key: "tx-hash" }],
        ["Block", anchor.block_number, { key: "block-number" }],
        ["Block hash", anchor.block_hash, { mono: true, key: "block-hash" }],
        ["Log index", anchor.log_index, { key: "log-index" }],
        ["Anchored at", anchor.anchored_at, { key: "anchored-at" }],
        ["Confirmations", anchor.confirmations, { key: "confirmations" }],
        ["Finality", (anchor.final ? "final" : "not final yet") +
          (finality && finality.detail ? " (" + finality.detail + ")" : ""), {
          className: anchor.final ? "good" : "warn", key: "finality" }],
        ["Chain", evidence.chainId, { key: "chain-id" }],
        ["Registry", evidence.registry, { mono: true, key: "registry" }],
      ]);
      return;
    }
    var claimed = receipt && isObject(receipt.anchor) ? receipt.anchor : {};
    setFacts($("anchor"), [
      ["Confirmed", "no: this node does not hold this anchor", { className: "bad", key: "finality" }],
      ["Claimed transaction", claimed.txHash, { mono: true, key: "tx-hash" }],
      ["Claimed block", claimed.blockNumber, { key: "block-number" }],
      ["Claimed chain", claimed.chainId, { key: "chain-id" }],
      ["Claimed registry", claimed.registry, { mono: true, key: "registry" }],
    ]);
  }

  function renderRevocation(verdict) {
    var revocation = verdict.revocation;
    if (revocation) {
      setFacts($("revocation"), [
        ["Status", "revoked", { className: "bad", key: "revoked" }],
        ["Reason", reasonName(revocation.reason), { key: "revocation-reason" }],
        ["Scope", revocation.scope === "root" ? "the whole batch" : "this certificate", {
          key: "revocation-scope" }],
        ["Block", revocation.block_number, { key: "revocation-block" }],
        ["Revoked at", revocation.revoked_at, { key: "revoked-at" }],
        ["Transaction", revocation.tx_hash, { mono: true, key: "revocation-tx" }],
      ]);
      return;
    }
    var check = checkNamed(verdict, "revocation");
    var passed = check && check.outcome === "pass";
    setFacts($("revocation"), [
      ["Status", passed ? "not revoked" : "not checked", { className: passed ? "good" : "warn",
        key: "revoked" }],
      ["Detail", check ? check.detail : null, { key: "revocation-detail" }],
    ]);
  }

  // The achievement of an Open Badge 3.0 (credentialSubject.achievement), or null.
  function achievementOf(credential) {
    if (!isObject(credential)) return null;
    var types = Array.isArray(credential.type) ? credential.type : [credential.type];
    var isBadge = types.some(function (type) {
      return BADGE_TYPES.indexOf(type) >= 0;
    });
    var subject = Array.isArray(credential.credentialSubject)
      ? credential.credentialSubject[0] : credential.credentialSubject;
    return isBadge && isObject(subject) && isObject(subject.achievement) ? subject.achievement : null;
  }

  function shownText(value) {
    if (value === undefined || value === null) return null;
    return typeof value === "string" ? value : JSON.stringify(value);
  }

  function renderBadge(credential) {
    var card = $("badge");
    var image = $("badge-image");
    var achievement = achievementOf(credential);
    image.hidden = true;
    image.removeAttribute("src");
    image.alt = "";
    card.hidden = !achievement;
    if (!achievement) {
      clear($("badge-facts"));
      return;
    }
    var criteria = isObject(achievement.criteria) ? achievement.criteria : {};
    var picture = isObject(achievement.image) ? achievement.image.id : achievement.image;
    var rows = [
      ["Achievement", shownText(achievement.name), { key: "badge-name" }],
      ["Description", shownText(achievement.description), { key: "badge-description" }],
      ["Criteria", shownText(criteria.narrative !== undefined ? criteria.narrative : criteria.id), {
        key: "badge-criteria" }],
    ];
    if (typeof picture === "string" && DATA_IMAGE.test(picture)) {
      image.src = picture; // carried in the credential: nothing is fetched
      image.alt = "Badge image: " + (shownText(achievement.name) || "achievement");
      image.hidden = false;
    } else if (picture !== undefined && picture !== null) {
      rows.push(["Image (not loaded)", shownText(picture), { mono: true, key: "badge-image-link" }]);
    }
    setFacts($("badge-facts"), rows);
  }

  function renderChecks(verdict) {
    var body = $("checks").tBodies[0];
    clear(body);
    (verdict.checks || []).forEach(function (check) {
      var row = document.createElement("tr");
      row.className = "outcome-" + check.outcome;
      row.setAttribute("data-check", check.name);
      row.setAttribute("data-outcome", check.outcome);
      row.appendChild(el("th", check.name)).setAttribute("scope", "row");
      row.appendChild(el("td", OUTCOME_LABEL[check.outcome] || check.outcome, "outcome"));
      row.appendChild(el("td", check.code || "\u2014", "code"));
      row.appendChild(el("td", check.detail || ""));
      body.appendChild(row);
    });
  }

  // What the page reads from a receipt itself, before the node answers:
  // {kind: "sd-jwt" | "data-integrity" | "legacy" | null, credential, pointers}. For an SD-JWT the
  // credential is the payload reconstructed here and pointers are its disclosable claims; for the
  // others, the credential object as it is (a /1 receipt's withholdable fields come from it).
  function readReceipt(receipt) {
    var none = { kind: null, credential: null, pointers: [] };
    if (!isObject(receipt)) return Promise.resolve(none);
    if (receipt.format === "finvault-receipt/2" && typeof receipt.credential === "string") {
      return window.FinVaultDisclose.processSdJwt(receipt.credential).then(
        function (processed) {
          return {
            kind: "sd-jwt",
            credential: processed.payload,
            pointers: processed.claims.map(function (claim) {
              return claim.pointer;
            }),
          };
        },
        function () {
          return { kind: "sd-jwt", credential: null, pointers: [] }; // the node says what is wrong
        }
      );
    }
    if (!isObject(receipt.credential)) return Promise.resolve(none);
    var kind = receipt.format === "finvault-receipt/2" ? "data-integrity" : "legacy";
    var pointers = kind === "legacy" ? window.FinVaultDisclose.withholdable(receipt.credential) : [];
    return Promise.resolve({ kind: kind, credential: receipt.credential, pointers: pointers });
  }

  function passed(verdict, name) {
    var check = checkNamed(verdict, name);
    return Boolean(check && check.outcome === "pass");
  }

  function renderFields(verdict, view) {
    var body = $("fields").tBodies[0];
    clear(body);
    var credential = view.credential;
    var note = $("fields-note");
    if (!credential) {
      note.textContent = "The receipt has no readable credential.";
      note.className = "bad";
      return;
    }
    var signedWhole = view.kind !== "legacy" && passed(verdict, "digest") &&
      (passed(verdict, "signature") || passed(verdict, "data_integrity"));
    if (view.kind === "legacy" && passed(verdict, "digest") && passed(verdict, "signature")) {
      note.textContent = "Every value below matches the digest the issuer signed.";
      note.className = "good";
    } else if (signedWhole) {
      note.textContent = "Every value below is what the issuer signed.";
      note.className = "good";
    } else if (view.kind === "legacy" && passed(verdict, "digest")) {
      note.textContent = "These values match the receipt's digest, but its signature was not confirmed.";
      note.className = "warn";
    } else {
      note.textContent = "These values do NOT match what the issuer signed: do not rely on them.";
      note.className = "bad";
    }
    displayFields(credential).forEach(function (pair) {
      var row = document.createElement("tr");
      row.setAttribute("data-pointer", pair[0]);
      row.appendChild(el("th", pair[0] || "(document)", "pointer")).setAttribute("scope", "row");
      row.appendChild(el("td", pair[1], "value"));
      body.appendChild(row);
    });
  }

  function renderHidden(receipt, view) {
    var list = $("hidden-list");
    clear(list);
    var summary = $("hidden-summary");
    if (view.kind === "sd-jwt") {
      summary.setAttribute("data-count", "unknown");
      summary.textContent =
        view.pointers.length + (view.pointers.length === 1 ? " claim is" : " claims are") +
        " disclosed one by one. A claim the holder withheld is only a digest in what the issuer" +
        " signed, among decoys: its value cannot be seen, and how many were withheld only roughly.";
      return;
    }
    if (view.kind === "data-integrity") {
      summary.setAttribute("data-count", "0");
      summary.textContent = "Nothing is withheld: a Data Integrity proof covers the whole credential.";
      return;
    }
    var hidden = receipt && Array.isArray(receipt.obfuscated) ? receipt.obfuscated : [];
    summary.setAttribute("data-count", String(hidden.length));
    if (!hidden.length) {
      summary.textContent = "No field is withheld: the whole certificate is disclosed.";
      return;
    }
    summary.textContent =
      hidden.length + (hidden.length === 1 ? " field is" : " fields are") +
      " withheld by the holder. The receipt carries only their salted hashes, which still count" +
      " towards the signed digest; their names and values are not shown to anyone.";
    hidden.forEach(function (hash) {
      list.appendChild(el("li", hash, "hash"));
    });
  }

  var SHARE_HELP = {
    "sd-jwt": "Untick what the person you share with should not see. The smaller receipt is" +
      " computed in this browser (nothing is uploaded) and still verifies: the issuer's signature" +
      " stays, the withheld claims' disclosures go. Withholding a claim withholds everything in it;" +
      " a single entry of a list can be withheld on its own.",
    legacy: "Untick what the person you share with should not see. The smaller receipt is" +
      " computed in this browser (nothing is uploaded) and still verifies: the withheld fields'" +
      " hashes stay in it, their names and values do not. Withholding a group withholds everything" +
      " in it; a single entry of a list cannot be withheld on its own (legacy finvault-receipt/1).",
  };

  // The receipt shown, what the page read from it, and its leaf, for "share less".
  var shown = { receipt: null, view: null, leaf: null };

  function renderShare(receipt, view, leaf) {
    shown = { receipt: receipt, view: view, leaf: leaf };
    var box = $("share-fields");
    while (box.lastChild && box.lastChild.tagName !== "LEGEND") box.removeChild(box.lastChild);
    $("share-status").textContent = "";
    var usable = Boolean(SHARE_HELP[view.kind] && view.credential && view.pointers.length);
    $("share").hidden = !usable;
    if (!usable) return;
    $("share-help").textContent = SHARE_HELP[view.kind];
    var values = {};
    displayFields(view.credential).forEach(function (pair) {
      values[pair[0]] = pair[1];
    });
    view.pointers.forEach(function (pointer, index) {
      var label = el("label", null, "share-field");
      var box_ = document.createElement("input");
      box_.type = "checkbox";
      box_.value = pointer;
      box_.checked = true; // ticked: shared; untick to withhold
      box_.id = "share-" + index;
      label.setAttribute("for", box_.id);
      label.appendChild(box_);
      label.appendChild(el("span", pointer, "pointer"));
      if (Object.prototype.hasOwnProperty.call(values, pointer)) {
        label.appendChild(el("span", values[pointer], "value"));
      }
      box.appendChild(label);
    });
  }

  // Unticking a claim unticks what is inside it (it goes with it); ticking one ticks what holds it.
  function keepTicksConsistent(event) {
    var changed = event.target;
    if (!changed || changed.type !== "checkbox") return;
    var pointer = changed.value;
    Array.prototype.forEach.call($("share-fields").querySelectorAll("input[type=checkbox]"), function (box) {
      var inside = box.value.indexOf(pointer + "/") === 0;
      var holds = pointer.indexOf(box.value + "/") === 0;
      if ((!changed.checked && inside) || (changed.checked && holds)) box.checked = changed.checked;
    });
  }

  function downloadSmaller() {
    var status = $("share-status");
    var chosen = Array.prototype.filter
      .call($("share-fields").querySelectorAll("input[type=checkbox]"), function (box) {
        return !box.checked;
      })
      .map(function (box) {
        return box.value;
      });
    // An unticked group covers what is inside it: withhold only the outermost unticked pointers.
    var outermost = chosen.filter(function (pointer) {
      return !chosen.some(function (other) {
        return other !== pointer && pointer.indexOf(other + "/") === 0;
      });
    });
    var sdJwt = shown.view.kind === "sd-jwt";
    var making = sdJwt
      ? window.FinVaultDisclose.discloseV2(shown.receipt, outermost)
      : window.FinVaultDisclose.disclose(shown.receipt, outermost);
    making.then(
      function (smaller) {
        var text = JSON.stringify(smaller, null, 2) + "\n";
        var link = document.createElement("a");
        var leaf = shown.leaf || "receipt";
        link.href = URL.createObjectURL(new Blob([text], { type: "application/json" }));
        link.download = "receipt-" + leaf.slice(2, 12) + "-shared.json";
        document.body.appendChild(link);
        link.click();
        document.body.removeChild(link);
        window.setTimeout(function () {
          URL.revokeObjectURL(link.href);
        }, 0);
        status.className = "good";
        status.textContent = sdJwt
          ? outermost.length + (outermost.length === 1 ? " claim" : " claims") +
            " withheld, with everything in them. The smaller receipt was downloaded."
          : outermost.length + (outermost.length === 1 ? " field" : " fields") + " withheld; " +
            smaller.obfuscated.length + " withheld in all. The smaller receipt was downloaded.";
      },
      function (error) {
        status.className = "bad";
        status.textContent = "Could not make a smaller receipt: " + error.message;
      }
    );
  }

  function renderEvidence(verdict) {
    var e = verdict.evidence || {};
    setFacts($("evidence"), [
      ["Digest", e.digest, { mono: true }],
      ["Leaf", e.leaf, { mono: true }],
      ["Root", e.root, { mono: true }],
      ["Proof steps", Array.isArray(e.proof) ? e.proof.length : null],
      ["Key id", e.keyId, { mono: true }],
      ["Chain id", e.chainId],
      ["Registry", e.registry, { mono: true }],
    ]);
  }

  // The receipt's leaf: recomputed by the node (evidence), else as a legacy receipt states it.
  function leafOf(verdict, receipt) {
    var evidence = isObject(verdict.evidence) ? verdict.evidence : {};
    if (typeof evidence.leaf === "string") return evidence.leaf.toLowerCase();
    return receipt && isObject(receipt.proof) && typeof receipt.proof.leaf === "string"
      ? receipt.proof.leaf.toLowerCase() : null;
  }

  function renderLeafWarning(leaf) {
    var warning = $("leaf-warning");
    if (linkLeaf && leaf !== linkLeaf) {
      warning.textContent =
        "This receipt is for certificate " + (leaf || "(unknown)") + ", not " + linkLeaf +
        " from the link you opened. The verdict below is about the receipt, not the link.";
      warning.hidden = false;
    } else {
      warning.hidden = true;
      warning.textContent = "";
    }
  }

  function renderNote(verdict) {
    var note = $("result-note");
    var trusted = verdict.issuer || verdict.anchor;
    note.hidden = !(verdict.status === "INVALID" && trusted);
    note.textContent = note.hidden
      ? ""
      : "The issuer and anchor below are what the chain records for the batch this receipt points to." +
        " The receipt itself failed its checks, so it is not proof of that certificate.";
  }

  function showVerdict(verdict, receipt, read) {
    // The credential as disclosed: reconstructed here, else as the node judged it.
    var view = read.credential || !isObject(verdict.credential)
      ? read : { kind: read.kind, credential: verdict.credential, pointers: read.pointers };
    var leaf = leafOf(verdict, receipt);
    showVerdictBanner(verdict);
    setBannerIdentity(verdict.identity);
    var line = $("banner-as-of");
    line.textContent = describeAsOf(verdict.as_of, true);
    line.hidden = !line.textContent;
    renderNote(verdict);
    renderLeafWarning(leaf);
    renderIssuer(verdict, receipt);
    renderDates(verdict, view.credential);
    renderAnchor(verdict, receipt);
    renderRevocation(verdict);
    renderBadge(view.credential);
    renderChecks(verdict);
    renderFields(verdict, view);
    renderHidden(receipt, view);
    renderShare(receipt, view, leaf);
    renderEvidence(verdict);
    $("result").hidden = false;
  }

  function showError(message) {
    $("result").hidden = true;
    $("leaf-warning").hidden = true;
    setBanner("ERROR", "ERROR", message);
  }

  // HTTP 503 with a mirror_* code: the node cannot vouch for its mirror, so there is no verdict.
  function showCannotVouch(response, body) {
    $("result").hidden = true;
    $("leaf-warning").hidden = true;
    var retry = response.headers.get("Retry-After");
    setBanner(
      "UNVOUCHED",
      "This node cannot vouch right now",
      body.error.message + " (" + body.error.code + "). No verdict is given" +
        (retry ? "; try again in " + retry + " s." : "."),
      describeAsOf(body.as_of, false)
    );
  }

  function cannotVouch(answer) {
    var error = answer.body && isObject(answer.body.error) ? answer.body.error : null;
    return answer.response.status === 503 && error !== null && /^mirror_/.test(String(error.code));
  }

  // -- talking to the node ----------------------------------------------------------------------

  function errorMessage(response, body) {
    var error = body && isObject(body.error) ? body.error : null;
    var text = error
      ? error.message + " (" + error.code + ", HTTP " + response.status + ")"
      : "the node answered HTTP " + response.status;
    var retry = response.headers.get("Retry-After");
    return "Could not verify: " + text + (retry ? "; retry in " + retry + " s" : "") + ".";
  }

  function verifyText(text, source) {
    if (!text || !text.trim()) {
      showError("Nothing to verify: the " + source + " is empty.");
      return;
    }
    var receipt = null;
    try {
      receipt = JSON.parse(text);
    } catch (ignored) {
      receipt = null; // the node judges the exact text; it explains what is wrong with it
    }
    var seq = ++requestSeq;
    var reading = readReceipt(receipt); // in this browser, while the node judges the exact text
    var controller = new AbortController();
    var timer = window.setTimeout(function () {
      controller.abort();
    }, REQUEST_TIMEOUT_MS);
    setBanner("WORKING", "Checking\u2026", "Asking this node about the receipt from the " + source + ".");
    window
      .fetch("/verify", {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: text,
        cache: "no-store",
        credentials: "same-origin",
        signal: controller.signal,
      })
      .then(function (response) {
        return response.json().then(
          function (body) {
            return { response: response, body: body };
          },
          function () {
            return { response: response, body: null };
          }
        );
      })
      .then(function (answer) {
        if (seq !== requestSeq) return; // a newer receipt was loaded meanwhile
        if (answer.response.ok && answer.body && typeof answer.body.status === "string") {
          return reading.then(function (read) {
            if (seq === requestSeq) showVerdict(answer.body, isObject(receipt) ? receipt : null, read);
          });
        }
        if (cannotVouch(answer)) {
          showCannotVouch(answer.response, answer.body);
        } else {
          showError(errorMessage(answer.response, answer.body));
        }
      })
      .catch(function (error) {
        if (seq !== requestSeq) return;
        showError(
          error && error.name === "AbortError"
            ? "Could not verify: the node did not answer within " + REQUEST_TIMEOUT_MS / 1000 + " s."
            : "Could not verify: the node could not be reached."
        );
      })
      .finally(function () {
        window.clearTimeout(timer);
      });
  }

  function verifyFile(file) {
    if (!file) return;
    if (file.size > MAX_RECEIPT_BYTES) {
      showError(
        "Could not verify: " + file.name + " is " + file.size + " bytes; a receipt is at most " +
          MAX_RECEIPT_BYTES + "."
      );
      return;
    }
    file.text().then(
      function (text) {
        verifyText(text, "file " + file.name);
      },
      function () {
        showError("Could not read " + file.name + ".");
      }
    );
  }

  // -- wiring -----------------------------------------------------------------------------------

  function init() {
    var dropzone = $("dropzone");
    var fileInput = $("file-input");
    var paste = $("paste");

    if (linkLeaf) {
      $("link-leaf").textContent = linkLeaf;
      $("link-prompt").hidden = false;
      document.title = "FinVault: verify certificate " + linkLeaf.slice(0, 10) + "\u2026";
    }

    fileInput.addEventListener("change", function () {
      verifyFile(fileInput.files && fileInput.files[0]);
      fileInput.value = ""; // choosing the same file again verifies it again
    });

    dropzone.addEventListener("click", function () {
      fileInput.click();
    });
    dropzone.addEventListener("keydown", function (event) {
      if (event.key === "Enter" || event.key === " ") {
        event.preventDefault();
        fileInput.click();
      }
    });

    // A file dropped anywhere on the page is taken (the browser would otherwise navigate to it).
    var depth = 0;
    document.addEventListener("dragenter", function (event) {
      event.preventDefault();
      depth += 1;
      dropzone.classList.add("dragging");
    });
    document.addEventListener("dragleave", function () {
      depth = Math.max(0, depth - 1);
      if (!depth) dropzone.classList.remove("dragging");
    });
    document.addEventListener("dragover", function (event) {
      event.preventDefault();
      if (event.dataTransfer) event.dataTransfer.dropEffect = "copy";
    });
    document.addEventListener("drop", function (event) {
      event.preventDefault();
      depth = 0;
      dropzone.classList.remove("dragging");
      var data = event.dataTransfer;
      if (data && data.files && data.files.length) verifyFile(data.files[0]);
      else if (data && data.getData("text")) verifyText(data.getData("text"), "dropped text");
    });

    $("share-download").addEventListener("click", downloadSmaller);
    $("share-fields").addEventListener("change", keepTicksConsistent);
    $("verify-paste").addEventListener("click", function () {
      verifyText(paste.value, "pasted text");
    });
    paste.addEventListener("keydown", function (event) {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
        event.preventDefault();
        verifyText(paste.value, "pasted text");
      }
    });
    paste.addEventListener("paste", function () {
      window.setTimeout(function () {
        verifyText(paste.value, "pasted text");
      }, 0);
    });
    document.documentElement.setAttribute("data-ready", "true");
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
