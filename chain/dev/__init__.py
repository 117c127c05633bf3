"""Development tools: the local anvil chain and the solc-js toolchain.

The demo, the tests and setup use them; no role imports them at runtime.
"""
