"""Network presets: ``--network local|amoy|polygon`` (``FINVAULT_NETWORK``).

A preset supplies the chain id, confirmation depths, the EIP-1559 tip floor and a public RPC URL.
Anything given explicitly (a flag or a ``FINVAULT_*`` variable) wins over the preset; see
:class:`chain.service.settings.ChainSettings`. This is the one table of per-chain facts: the tip floor
for a bare ``--chain-id 137`` comes from here too.

Why 64 confirmations on Polygon PoS and Amoy
--------------------------------------------
FinVault calls an anchor final only when it is both ``confirmations`` deep *and* at or below the
endpoint's ``finalized`` block (``chain.core.verify``, ``indexer.sync``). On Polygon the ``finalized``
tag is the real guard; the depth is the safety net for an endpoint without the tag, for
``--no-finalized-tag``, and for a milestone outage. The history it has to cover:

- Before the Delhi fork (Jan 2023) a block producer made 64-block sprints and reorgs tens of
  blocks deep were routine. After it (sprints of 16), 32-block reorgs still happened as easily
  as 1-block ones elsewhere, and in Feb 2023 one reorg was 157 blocks deep.
- PIP-11 milestones (Aalborg hardfork, late 2023) brought deterministic finality: Bor never
  reorgs below a milestone, and ``eth_getBlockByNumber("finalized")`` returns the newest one.
  Milestones then took 60-90 s, i.e. 30-45 blocks at ~2 s a block.
- Heimdall v2 (July 2025) cut milestone finality to 2-5 s (docs.polygon.technology, "PoS
  concepts: finality"). In Sept 2025 a faulty milestone delayed finality by 10-15 minutes and
  split Bor nodes until an emergency hardfork: the tag can stall, and then depth is all we have.

64 blocks (about two minutes) is twice the post-Delhi reorg depth and above the pre-v2
milestone latency, yet a short wait for an issuer anchoring a batch. It does not cover a
pre-milestone 157-block reorg: verifying without the ``finalized`` tag is a weaker check,
which is why ``--no-finalized-tag`` is opt-in. Amoy runs the same Bor/Heimdall code and uses the
same numbers, so a rehearsal there behaves like production.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from types import MappingProxyType
from typing import Any


@dataclass(frozen=True)
class NetworkPreset:
    """What FinVault assumes about one network unless told otherwise."""

    name: str
    chain_id: int
    #: Blocks a transaction must be buried under (sending, and ``verify``'s policy).
    confirmations: int
    #: Depth at which the indexer counts mirror rows as final.
    sync_confirmations: int
    #: EIP-1559 tip floor: validators drop transactions that tip less.
    min_priority_fee_gwei: Decimal
    #: A public, rate-limited endpoint: fine for trying things, not for a production node.
    rpc_url: str
    explorer_url: str | None
    finality: str

    def settings_defaults(self) -> dict[str, Any]:
        """The settings this preset fills in (by field name) when they are not given."""
        return {
            "chain_id": self.chain_id,
            "confirmations": self.confirmations,
            "sync_confirmations": self.sync_confirmations,
            "min_priority_fee_gwei": self.min_priority_fee_gwei,
            "rpc_urls": [self.rpc_url],
        }


#: The network used when none is named: what FinVault did before presets existed.
DEFAULT_NETWORK = "local"
#: anvil's chain id, the ``local`` preset's.
DEV_CHAIN_ID = 31337

#: Polygon PoS validators (Bor) refuse tips below 30 gwei on mainnet and Amoy.
POLYGON_MIN_PRIORITY_FEE_GWEI = Decimal(30)
#: See the module docstring.
POLYGON_CONFIRMATIONS = 64

NETWORKS: Mapping[str, NetworkPreset] = MappingProxyType(
    {
        preset.name: preset
        for preset in (
            NetworkPreset(
                name="local",
                chain_id=DEV_CHAIN_ID,
                confirmations=1,
                sync_confirmations=12,
                min_priority_fee_gwei=Decimal(0),
                rpc_url="http://127.0.0.1:8545",
                explorer_url=None,
                finality="anvil: no reorgs unless a test makes one; its finalized tag trails the head by 64",
            ),
            NetworkPreset(
                name="amoy",
                chain_id=80002,
                confirmations=POLYGON_CONFIRMATIONS,
                sync_confirmations=POLYGON_CONFIRMATIONS,
                min_priority_fee_gwei=POLYGON_MIN_PRIORITY_FEE_GWEI,
                rpc_url="https://rpc-amoy.polygon.technology",
                explorer_url="https://amoy.polygonscan.com",
                finality="Polygon PoS testnet: milestone finality (finalized tag) in seconds; "
                "64 blocks (~2 min) where the tag is missing or stalled",
            ),
            NetworkPreset(
                name="polygon",
                chain_id=137,
                confirmations=POLYGON_CONFIRMATIONS,
                sync_confirmations=POLYGON_CONFIRMATIONS,
                min_priority_fee_gwei=POLYGON_MIN_PRIORITY_FEE_GWEI,
                rpc_url="https://polygon-rpc.com",
                explorer_url="https://polygonscan.com",
                finality="Polygon PoS: milestone finality (finalized tag) in 2-5 s since Heimdall v2; "
                "64 blocks (~2 min) where the tag is missing or stalled",
            ),
        )
    }
)


def network_names() -> str:
    """``local, amoy or polygon``: the choices, for messages."""
    names = list(NETWORKS)
    return ", ".join(names[:-1]) + " or " + names[-1]


def network_for_chain_id(chain_id: int) -> NetworkPreset | None:
    """The preset whose chain id this is, if any."""
    return next((preset for preset in NETWORKS.values() if preset.chain_id == chain_id), None)
