"""The pure, consensus-critical core: canonical documents, digests, Merkle trees and proofs,
signatures, receipts, accumulators, issuance and verification over supplied facts.

Nothing here does I/O, reads a clock or draws randomness of its own, and nothing here imports the
rest of the project (``tests/unit/test_dependencies.py`` checks it, transitively).
"""
