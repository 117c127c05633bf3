"""ape-config.yaml's Polygon networks (ape-polygon) and the ape deployment route of docs/usage.md.

ape runs in a subprocess, as a deployer would run it, against a local anvil that calls itself
chain 80002: ``polygon:amoy:<local URI>`` takes the repo's ``polygon.amoy`` settings without
going near Amoy. Proxies point at a closed port, so anything that tried a public endpoint fails.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from chain.contract import ARTIFACT_PATH
from chain.dev.devchain import DevChain
from chain.dev.toolchain import REPO_ROOT, node_modules
from chain.networks import NETWORKS
from chain.registry import RegistryReader
from chain.rpc import RpcClient

APE_TIMEOUT_SECONDS = 300

#: The route in docs/usage.md, with two test-only changes: the local URI instead of `polygon:amoy:node`
#: and no confirmations to wait for (anvil mines only when asked).
DEPLOY = """
import json, sys
from ape import accounts, networks
from ape.contracts import ContractContainer
from ethpm_types import ContractType

artifact = json.loads(open(sys.argv[2]).read())
registry_type = ContractType(
    contractName="FinVaultRegistry",
    abi=artifact["abi"],
    deploymentBytecode={"bytecode": artifact["bytecode"]},
)
with networks.parse_network_choice(f"polygon:amoy:{sys.argv[1]}") as provider:
    network = provider.network
    deployer = accounts.test_accounts[0]
    registry = deployer.deploy(
        ContractContainer(registry_type),
        deployer.address,
        gas_limit=3_000_000,
        max_priority_fee="30 gwei",
        required_confirmations=0,
    )
    print(json.dumps({
        "registry": registry.address,
        "tx": registry.txn_hash,
        "chain_id": provider.chain_id,
        "required_confirmations": network.required_confirmations,
        "transaction_acceptance_timeout": network.transaction_acceptance_timeout,
    }))
"""


@pytest.mark.slow
def test_ape_deploys_the_committed_artifact_on_polygon_amoy_settings(
    tmp_path: Path, closed_port: int
) -> None:
    unreachable_proxy = f"http://127.0.0.1:{closed_port}"
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy2(REPO_ROOT / "ape-config.yaml", project / "ape-config.yaml")
    (project / "node_modules").symlink_to(node_modules(), target_is_directory=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("FINVAULT_")}
    env.update(
        {
            "APE_DATA_FOLDER": str(tmp_path / "ape-data"),
            "HTTP_PROXY": unreachable_proxy,
            "HTTPS_PROXY": unreachable_proxy,
            "http_proxy": unreachable_proxy,
            "https_proxy": unreachable_proxy,
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
        }
    )
    amoy = NETWORKS["amoy"]
    with DevChain(chain_id=amoy.chain_id) as amoy_like, RpcClient([amoy_like.rpc_url]) as rpc:
        result = subprocess.run(
            [sys.executable, "-c", DEPLOY, amoy_like.rpc_url, str(ARTIFACT_PATH)],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            timeout=APE_TIMEOUT_SECONDS,
            check=False,
        )
        assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
        out = json.loads(result.stdout.strip().splitlines()[-1])
        assert out["chain_id"] == amoy.chain_id
        # ape-config.yaml agrees with chain/networks.py
        assert out["required_confirmations"] == amoy.confirmations
        assert out["transaction_acceptance_timeout"] == 300
        # The committed artifact, not an ape build: FinVault checks the code hash and accepts it.
        RegistryReader(rpc, out["registry"]).check_deployment()
        tx = rpc.call("eth_getTransactionByHash", [out["tx"]])
    assert int(tx["maxPriorityFeePerGas"], 16) == int(amoy.min_priority_fee_gwei) * 10**9
