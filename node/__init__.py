"""The verification node: an HTTP API and web page over the indexer's mirror.

- :mod:`~node.app`, :mod:`~node.models`, :mod:`~node.metrics`, :mod:`~node.page`: the FastAPI app,
  its response shapes, its Prometheus metrics and the web page;
- :mod:`~node.writer`: the mirror's one writer, its sync loop;
- :mod:`~node.runtime`, :mod:`~node.state`, :mod:`~node.health`: a serving process's view of the
  mirror, the state it reads from it, and whether the mirror can vouch for a verdict now;
- :mod:`~node.server`, :mod:`~node.worker`: running it, a writer and readers under a supervisor
  (or threads, for the demo and tests);
- :mod:`~node.mirror`, :mod:`~node.cursor`, :mod:`~node.audit`: reads, pagination and auditing;
- :mod:`~node.cli`: the node's ``finvault`` commands.

The node holds no private key and sends no transaction: it only reads the chain. It reads the
indexer's mirror schema, and never imports ``issuer``.
"""
