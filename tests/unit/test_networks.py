"""Network presets (``--network local|amoy|polygon``): values, precedence, errors, CLI wiring.

Nothing here reaches a public network: an autouse guard refuses to resolve any host name but the
loopback ones, and records what was asked for, so a command pointed at a preset's public RPC URL
fails before a single packet leaves the machine and the test can still see which URL it chose.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import click
import pytest

from chain.entry import build_cli, main
from chain.errors import ConfigError
from chain.networks import DEFAULT_NETWORK, NETWORKS, network_for_chain_id
from chain.service.settings import ChainSettings, load_settings
from chain.tx import GWEI
from indexer.settings import IndexerSettings
from node.settings import NodeSettings

REGISTRY = "0x5fbdb2315678afecb367f032d93f642f64180aa3"
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


@pytest.fixture(autouse=True)
def no_public_network(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Clean FINVAULT_* environment, no proxies, and no name resolution beyond loopback."""
    for name in list(os.environ):
        if name.startswith("FINVAULT_") or name.lower().endswith("_proxy"):
            monkeypatch.delenv(name)
    refused: list[str] = []
    resolve = socket.getaddrinfo

    def loopback_only(host: Any, *args: Any, **kwargs: Any) -> Any:
        if str(host) not in LOOPBACK:
            refused.append(str(host))
            raise OSError(f"test guard: no public network ({host})")
        return resolve(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", loopback_only)
    return refused


# -- the table ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "chain_id", "confirmations", "tip_gwei", "rpc_url"),
    [
        ("local", 31337, 1, 0, "http://127.0.0.1:8545"),
        ("amoy", 80002, 64, 30, "https://rpc-amoy.polygon.technology"),
        ("polygon", 137, 64, 30, "https://polygon-rpc.com"),
    ],
)
def test_presets(name: str, chain_id: int, confirmations: int, tip_gwei: int, rpc_url: str) -> None:
    preset = NETWORKS[name]
    assert (preset.chain_id, preset.confirmations, preset.min_priority_fee_gwei, preset.rpc_url) == (
        chain_id,
        confirmations,
        Decimal(tip_gwei),
        rpc_url,
    )
    assert preset.finality
    assert network_for_chain_id(chain_id) is preset
    settings = load_settings(IndexerSettings, network=name)
    assert settings.chain_id == chain_id
    assert settings.confirmations == confirmations
    assert settings.sync_confirmations == preset.sync_confirmations
    assert settings.rpc_urls == [rpc_url]
    assert settings.fee_policy.min_priority_fee_wei == tip_gwei * GWEI


def test_public_presets_never_point_at_loopback_and_local_never_leaves_it() -> None:
    assert NETWORKS["local"].rpc_url.startswith("http://127.0.0.1:")
    for name in ("amoy", "polygon"):
        assert NETWORKS[name].rpc_url.startswith("https://")
        assert NETWORKS[name].sync_confirmations >= NETWORKS[name].confirmations


def test_no_network_is_the_local_preset_and_changes_nothing() -> None:
    assert DEFAULT_NETWORK == "local"
    implicit = load_settings(IndexerSettings)
    explicit = load_settings(IndexerSettings, network="local")
    assert implicit.network is None
    assert explicit.network == "local"
    for settings in (implicit, explicit):
        assert settings.chain_id == 31337
        assert settings.confirmations == 1
        assert settings.sync_confirmations == 12
        assert settings.rpc_urls == ["http://127.0.0.1:8545"]
        assert settings.fee_policy.min_priority_fee_wei == 0


def test_a_bare_chain_id_brings_its_tip_floor_but_no_public_endpoint() -> None:
    """Before presets, FINVAULT_CHAIN_ID=137 alone meant a 30 gwei floor: it still does, and
    nothing else changes under an operator who did not ask for a network."""
    settings = load_settings(ChainSettings, chain_id=137)
    assert settings.network is None
    assert settings.fee_policy.min_priority_fee_wei == 30 * GWEI
    assert settings.rpc_urls == ["http://127.0.0.1:8545"]
    assert settings.confirmations == 1
    assert load_settings(ChainSettings, chain_id=59141).fee_policy.min_priority_fee_wei == 0


def test_network_names_are_case_insensitive() -> None:
    assert load_settings(ChainSettings, network=" Polygon ").network == "polygon"


# -- precedence: flag > environment > preset > default -----------------------------------------------


def test_flag_beats_environment_beats_preset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FINVAULT_NETWORK", "amoy")
    assert load_settings(ChainSettings).confirmations == 64  # preset
    monkeypatch.setenv("FINVAULT_CONFIRMATIONS", "5")
    assert load_settings(ChainSettings).confirmations == 5  # environment over preset
    assert load_settings(ChainSettings, confirmations=7).confirmations == 7  # flag over environment


def test_explicit_rpc_urls_and_tip_floor_beat_the_preset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FINVAULT_RPC_URLS", "https://amoy.example/KEY,https://backup.example")
    settings = load_settings(ChainSettings, network="amoy", min_priority_fee_gwei="31.5")
    assert settings.rpc_urls == ["https://amoy.example/KEY", "https://backup.example"]
    assert settings.fee_policy.min_priority_fee_wei == 31_500_000_000
    assert settings.chain_id == 80002
    flagged = load_settings(ChainSettings, network="amoy", rpc_urls=["http://127.0.0.1:9545"])
    assert flagged.rpc_urls == ["http://127.0.0.1:9545"]


def test_network_flag_beats_network_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FINVAULT_NETWORK", "polygon")
    assert load_settings(ChainSettings, network="amoy").chain_id == 80002


def test_matching_explicit_chain_id_is_fine() -> None:
    assert load_settings(ChainSettings, network="polygon", chain_id=137).chain_id == 137


def test_node_settings_take_the_preset_too() -> None:
    settings = load_settings(NodeSettings, network="polygon", registry=REGISTRY)
    assert (settings.chain_id, settings.confirmations, settings.sync_confirmations) == (137, 64, 64)


# -- errors --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("source", ["flag", "environment"])
def test_unknown_network_is_one_line_naming_the_choices(source: str, monkeypatch: pytest.MonkeyPatch) -> None:
    overrides: dict[str, Any] = {}
    if source == "flag":
        overrides["network"] = "mainnet"
    else:
        monkeypatch.setenv("FINVAULT_NETWORK", "mainnet")
    with pytest.raises(ConfigError) as caught:
        load_settings(ChainSettings, **overrides)
    message = str(caught.value)
    assert "\n" not in message
    assert "network: must be local, amoy or polygon (got 'mainnet')" in message


@pytest.mark.parametrize(
    ("env", "overrides"),
    [
        ({}, {"network": "amoy", "chain_id": 137}),
        ({"FINVAULT_CHAIN_ID": "31337"}, {"network": "polygon"}),
        ({"FINVAULT_NETWORK": "local"}, {"chain_id": 80002}),
    ],
)
def test_chain_id_contradicting_the_network_is_refused(
    env: dict[str, str], overrides: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as caught:
        load_settings(ChainSettings, **overrides)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("invalid settings: chain_id: network ")
    assert "drop --chain-id" in message


# -- the command line --------------------------------------------------------------------------------


def _commands(group: click.Group, prefix: str = "") -> Iterator[tuple[str, click.Command]]:
    context = click.Context(group)
    for name in group.list_commands(context):
        command = group.get_command(context, name)
        assert command is not None
        if isinstance(command, click.Group):
            yield from _commands(command, f"{prefix}{name} ")
        else:
            yield f"{prefix}{name}", command


def test_every_command_with_chain_options_takes_network() -> None:
    with_rpc = {
        name: {param.name for param in command.params}
        for name, command in _commands(build_cli())
        if any(param.name == "rpc_urls" for param in command.params)
    }
    assert {"deploy", "verify", "sync", "reconcile", "resync", "node", "anchor"} <= set(with_rpc)
    assert all("network" in params for params in with_rpc.values()), with_rpc


def _finvault(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exited:
        main(list(args))
    code = exited.value.code
    return code if isinstance(code, int) else 1, capsys.readouterr().err


def test_cli_unknown_network_exits_2_before_connecting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], no_public_network: list[str]
) -> None:
    receipt = tmp_path / "receipt.json"
    receipt.write_text("{}")
    code, err = _finvault(capsys, "verify", str(receipt), "--network", "mainnet", "--registry", REGISTRY)
    assert code == 2
    assert err.strip() == (
        "finvault: error: config_error: invalid settings: network: must be local, amoy or polygon "
        "(got 'mainnet')"
    )
    assert no_public_network == []


def test_cli_chain_id_mismatch_exits_2_before_connecting(
    capsys: pytest.CaptureFixture[str], no_public_network: list[str]
) -> None:
    code, err = _finvault(capsys, "deploy", "--network", "polygon", "--chain-id", "31337", "--dev")
    assert code == 2
    assert "network polygon is chain 137, not 31337" in err
    assert len(err.strip().splitlines()) == 1
    assert no_public_network == []


def test_cli_network_picks_the_presets_endpoint(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    no_public_network: list[str],
) -> None:
    """`verify --network polygon` goes to the preset's URL; the guard stops it at name resolution."""
    receipt = tmp_path / "receipt.json"
    receipt.write_text("{}")
    monkeypatch.setenv("FINVAULT_RPC_ROUNDS", "1")
    code, err = _finvault(capsys, "verify", str(receipt), "--network", "polygon", "--registry", REGISTRY)
    assert code == 1
    assert "rpc_unavailable" in err
    assert set(no_public_network) == {"polygon-rpc.com"}


def test_cli_explicit_rpc_wins_over_the_preset(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    no_public_network: list[str],
) -> None:
    receipt = tmp_path / "receipt.json"
    receipt.write_text("{}")
    monkeypatch.setenv("FINVAULT_RPC_ROUNDS", "1")
    closed = "http://127.0.0.1:9"  # discard port: nothing listens, the connection is refused
    code, err = _finvault(
        capsys, "verify", str(receipt), "--network", "amoy", "--rpc", closed, "--registry", REGISTRY
    )
    assert code == 1
    assert "rpc_unavailable" in err
    assert no_public_network == []


def test_cli_node_mode_refuses_network(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], no_public_network: list[str]
) -> None:
    receipt = tmp_path / "receipt.json"
    receipt.write_text("{}")
    code, err = _finvault(capsys, "verify", str(receipt), "--node", "http://127.0.0.1:9", "--network", "amoy")
    assert code == 2
    assert "drop --network" in err
    assert no_public_network == []
