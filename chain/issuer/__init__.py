"""The issuer service: intake, batching, crash-safe anchoring, receipts and revocation.

The issuer keeps its certificates, with their personal data, in a local store
(:mod:`chain.issuer.store`); only batch roots reach the chain.

- :mod:`~chain.issuer.template`, :mod:`~chain.issuer.intake`: credential templates and streaming
  intake of CSV, JSON Lines and JSON arrays, row by row with line-numbered rejections;
- :mod:`~chain.issuer.service`: storing intake, sealing batches, anchoring, resuming;
- :mod:`~chain.issuer.anchoring`: the crash-safe ``anchor`` transaction (store, then send);
- :mod:`~chain.issuer.outputs`: receipts, QR codes and public manifests, written atomically;
- :mod:`~chain.issuer.revoke`: idempotent revocation of certificates and batches;
- :mod:`~chain.issuer.scheduler`: sealing and anchoring on a timer or a pending-count threshold;
- :mod:`~chain.issuer.cli`: ``finvault issue``, ``finvault anchor`` and ``finvault revoke``.
"""
