"""The verification node: an HTTP API and web page over the indexer's mirror.

- :mod:`~node.app`, :mod:`~node.models`, :mod:`~node.metrics`, :mod:`~node.page`: the FastAPI app,
  its response shapes, its Prometheus metrics and the web page;
- :mod:`~node.runtime`, :mod:`~node.health`: the live sync loop and whether the mirror can vouch
  for a verdict now;
- :mod:`~node.server`, :mod:`~node.worker`, :mod:`~node.shared`: running it, in one process or
  several;
- :mod:`~node.mirror`, :mod:`~node.cursor`, :mod:`~node.audit`: reads, pagination and auditing;
- :mod:`~node.cli`: the node's ``finvault`` commands.

The node holds no private key and sends no transaction: it only reads the chain. It reads the
indexer's mirror schema, and never imports ``issuer``.
"""
