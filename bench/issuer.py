"""The issuer service from CSV to written receipts, and what one batch costs on-chain per certificate.

    .venv/bin/python bench/issuer.py [--rows 10000,100000] [--qr]

Runs on its own anvil. For each row count it times intake (CSV -> store), sealing + signing +
anchoring, and writing one receipt per certificate (QR codes off unless --qr: they cost ~14 ms
each). Then it reports gas per certificate for batches of 1, 100, 10k and 100k, against the
baseline measured in the same run: 100 certificates anchored one transaction each, the way a
per-certificate registry works. Informational: always exits 0.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from tempfile import TemporaryDirectory

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the test fixtures write the CSVs

from chain.accounts import LocalSigner
from chain.contract import load_artifact
from chain.core.signing import public_key_info
from chain.dev.devchain import DEV_CHAIN_ID, DevChain
from chain.keys import generate_private_key
from chain.registry import RegistryWriter, deploy_registry
from chain.rpc import RpcClient
from chain.tx import TxSender
from issuer.intake import read_input
from issuer.service import IssuerConfig, IssuerService, ingest
from issuer.store import Store
from issuer.template import load_template
from tests.integration.issuer_fixtures import TEMPLATE, write_students_csv


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", default="10000,100000", help="Comma-separated certificate counts.")
    parser.add_argument("--qr", action="store_true", help="Also write QR code PNGs.")
    args = parser.parse_args()
    sizes = [int(n) for n in args.rows.split(",")]
    artifact = load_artifact()
    with DevChain() as chain, RpcClient([chain.rpc_url]) as rpc, TemporaryDirectory() as tmp:

        def writer(account: int, address: str) -> RegistryWriter:
            sender = TxSender(
                rpc, LocalSigner.dev(account), chain_id=DEV_CHAIN_ID, abi=artifact.abi, poll_interval=0.01
            )
            return RegistryWriter(sender, address, artifact)

        deployed = deploy_registry(writer(0, "0x" + "00" * 20).sender, artifact=artifact)
        assert deployed.contract_address is not None
        registry = deployed.contract_address
        issuer = writer(1, registry)
        writer(0, registry).register_issuer(
            issuer.sender.signer.address, "Bench University", "https://bench.example"
        )
        key = generate_private_key("ed25519")
        info = public_key_info(key)
        issuer.add_key(info.key_id, int(info.algorithm), info.der)
        template = load_template(TEMPLATE)
        gas_per_batch: dict[int, int] = {}

        print(
            f"{'certificates':>12}  {'intake':>9}  {'seal+anchor+receipts':>21}  {'total':>8}  {'certs/s':>9}"
        )
        for size in sorted({1, 100, *sizes}):
            work = Path(tmp) / f"run-{size}"
            work.mkdir()
            csv_path = write_students_csv(work / "in.csv", size)
            store = Store.open(f"sqlite:///{work / 'issuer.db'}")
            started = time.perf_counter()
            ingest(store, read_input(csv_path, template))
            ingested = time.perf_counter()
            config = IssuerConfig(out_dir=work / "receipts", qr_codes=args.qr, max_batch_size=max(size, 1))
            batches = IssuerService(store, issuer, key, config).run_once()
            done = time.perf_counter()
            store.close()
            gas_per_batch[size] = sum(b.gas_used or 0 for b in batches)
            if size in sizes:
                total = done - started
                print(
                    f"{size:>12,}  {ingested - started:>8.1f}s  {done - ingested:>20.1f}s  {total:>7.1f}s  "
                    f"{size / total:>9,.0f}"
                )

        started = time.perf_counter()
        baseline_gas = sum(issuer.anchor(os.urandom(32), 1).gas_used for _ in range(100))
        baseline_time = time.perf_counter() - started
        per_cert_baseline = baseline_gas / 100
        print(f"\nbaseline: 100 certificates, one anchor tx each: {baseline_gas:,} gas, {baseline_time:.1f}s")
        print(f"{'batch size':>12}  {'anchor gas':>10}  {'gas/certificate':>15}  {'vs per-certificate':>18}")
        for size, gas in sorted(gas_per_batch.items()):
            print(
                f"{size:>12,}  {gas:>10,}  {gas / size:>15,.1f}  {per_cert_baseline / (gas / size):>17,.0f}x"
            )


if __name__ == "__main__":
    main()
