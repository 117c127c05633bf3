"""The library every role stands on: the pure core and the chain I/O around it.

- :mod:`~chain.core`: pure and consensus-critical (canonical documents, digests, Merkle trees,
  signatures, receipts, verification over supplied facts); no I/O;
- :mod:`~chain.rpc`, :mod:`~chain.rpc_facts`, :mod:`~chain.contract`, :mod:`~chain.registry`,
  :mod:`~chain.tx`, :mod:`~chain.accounts`, :mod:`~chain.keys`, :mod:`~chain.networks`: JSON-RPC
  with failover, chain facts, contract bindings, transactions, sending accounts, document-signing
  keys at rest and network presets;
- :mod:`~chain.service`: plumbing the long-running roles share; :mod:`~chain.dev`: dev tools only;
- :mod:`~chain.cli`, :mod:`~chain.entry`: the chain's commands, and the ``finvault`` entry point
  (:mod:`~chain.commands` names the commands without importing them).

``chain`` loads no role (``issuer``, ``indexer``, ``node``), even indirectly.
"""
