"""Gas used by each FinVaultRegistry call on a fresh anvil chain (deterministic, so no ratios).

    .venv/bin/python bench/gas.py

The gas table in docs/formats.md comes from this script. ``anchor`` must stay near 60k whatever
the batch size.
"""

from __future__ import annotations

import os

from chain.accounts import LocalSigner
from chain.contract import load_artifact
from chain.core.merkle import MerkleTree
from chain.core.signing import public_key_info
from chain.dev.devchain import DEV_CHAIN_ID, DevChain
from chain.keys import generate_private_key
from chain.registry import RegistryWriter, RevocationReason, deploy_registry
from chain.rpc import RpcClient
from chain.tx import TxSender


def main() -> None:
    artifact = load_artifact()
    with DevChain() as chain, RpcClient([chain.rpc_url]) as rpc:

        def sender(account: int) -> TxSender:
            return TxSender(
                rpc, LocalSigner.dev(account), chain_id=DEV_CHAIN_ID, abi=artifact.abi, poll_interval=0.02
            )

        def row(call: str, gas: int) -> None:
            print(f"| {call} | {gas:,} |")

        deployed = deploy_registry(sender(0), artifact=artifact)
        assert deployed.contract_address is not None
        owner = RegistryWriter(sender(0), deployed.contract_address, artifact)
        issuer = RegistryWriter(sender(1), deployed.contract_address, artifact)
        print("| call | gas |\n| --- | --- |")
        row("deployment", deployed.gas_used)
        row(
            "registerIssuer",
            owner.register_issuer(
                issuer.sender.signer.address, "Example University", "https://example.edu"
            ).gas_used,
        )
        for kind in ("ed25519", "rsa-2048"):
            info = public_key_info(generate_private_key(kind))  # type: ignore[arg-type]
            row(f"addKey {kind}", issuer.add_key(info.key_id, int(info.algorithm), info.der).gas_used)
        ipfs = "ipfs://bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi"
        tree = MerkleTree([os.urandom(32)])
        for count, uri in ((1, ""), (1_000, ipfs), (100_000, "https://issuer.example/manifests/" + "x" * 67)):
            tree = MerkleTree([os.urandom(32) for _ in range(count)])
            row(
                f"anchor, {count:,} certificates, {len(uri)}-byte URI",
                issuer.anchor(tree.root, count, uri).gas_used,
            )
        leaves = tree.leaves
        proof = tree.proof(leaves[0])
        reason = RevocationReason.SUPERSEDED
        row(
            f"revokeLeaf, proof depth {len(proof)}",
            issuer.revoke_leaf(leaves[0], tree.root, proof, reason).gas_used,
        )
        multi = tree.multiproof(leaves[1:11])
        row(
            "revokeLeaves, 10 leaves",
            issuer.revoke_leaves(multi.leaves, tree.root, multi.proof, multi.proof_flags, reason).gas_used,
        )
        row("revokeRoot", issuer.revoke_root(tree.root, RevocationReason.KEY_COMPROMISE).gas_used)


if __name__ == "__main__":
    main()
