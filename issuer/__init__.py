"""The issuer service: intake, batching, crash-safe anchoring, receipts and revocation.

The issuer keeps its certificates, with their personal data, in a local store
(:mod:`issuer.store`); only batch roots reach the chain.

- :mod:`~issuer.template`, :mod:`~issuer.intake`: credential templates and streaming
  intake of CSV, JSON Lines and JSON arrays, row by row with line-numbered rejections;
- :mod:`~issuer.service`: storing intake, sealing batches, anchoring, resuming;
- :mod:`~issuer.anchoring`: the crash-safe ``anchor`` transaction (store, then send);
- :mod:`~issuer.outputs`: receipts, QR codes and public manifests, written atomically;
- :mod:`~issuer.revoke`: idempotent revocation of certificates and batches;
- :mod:`~issuer.scheduler`: sealing and anchoring on a timer or a pending-count threshold;
- :mod:`~issuer.api`, :mod:`~issuer.api_keys`, :mod:`~issuer.api_models`, :mod:`~issuer.webhooks`:
  the HTTP API (routes and idempotency, keys, models) and its webhooks;
- :mod:`~issuer.registration`: registering the issuer and its signing keys on-chain;
- :mod:`~issuer.cli`: ``finvault issue``, ``finvault anchor``, ``finvault revoke`` and
  ``finvault issuer-api``.
"""
