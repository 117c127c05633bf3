"""The indexer: follows the registry's events into a local mirror that survives reorgs and crashes.

- :mod:`~indexer.fetch`, :mod:`~indexer.decode`: raw ``eth_getLogs`` and hand decoding of the logs;
- :mod:`~indexer.sync`: the sync loop (reorg detection, one transaction per step);
- :mod:`~indexer.schema`, :mod:`~indexer.db`, :mod:`~indexer.rewind`: the mirror's tables,
  opening and migrating it, rewinding it;
- :mod:`~indexer.reader`: the one reader of the mirror (verification facts, listings), which the
  node uses too;
- :mod:`~indexer.reconcile`, :mod:`~indexer.digests`: proving a mirror equal to the chain, or to
  another node's mirror;
- :mod:`~indexer.errors`: the indexer's errors;
- :mod:`~indexer.cli`: the indexer's ``finvault`` commands.

The indexer never imports ``issuer`` or ``node``.
"""
