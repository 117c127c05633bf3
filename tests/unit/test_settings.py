from __future__ import annotations

import pytest

from chain.accounts import require_dev_chain
from chain.errors import ConfigError
from chain.service.settings import ChainSettings, is_http_url, load_settings, normalize_address
from chain.tx import GWEI


def test_environment_with_comma_separated_urls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FINVAULT_RPC_URLS", "https://a.example/key, http://127.0.0.1:8545")
    monkeypatch.setenv("FINVAULT_CHAIN_ID", "80002")
    monkeypatch.setenv("FINVAULT_REGISTRY", "0x5FbDB2315678afecb367f032d93F642f64180aa3")
    settings = load_settings(ChainSettings)
    assert settings.rpc_urls == ["https://a.example/key", "http://127.0.0.1:8545"]
    assert settings.registry == "0x5fbdb2315678afecb367f032d93f642f64180aa3"
    assert settings.fee_policy.min_priority_fee_wei == 30 * GWEI  # Amoy's floor by default


def test_flags_override_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FINVAULT_CONFIRMATIONS", "12")
    settings = load_settings(ChainSettings, confirmations=3, chain_id=None)
    assert settings.confirmations == 3
    assert settings.chain_id == 31337
    assert settings.fee_policy.min_priority_fee_wei == 0


def test_explicit_priority_fee_floor() -> None:
    settings = load_settings(ChainSettings, chain_id=137, min_priority_fee_gwei="45.5")
    assert settings.fee_policy.min_priority_fee_wei == 45_500_000_000


def test_bad_settings_give_one_line_naming_each_field(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FINVAULT_CHAIN_ID", "polygon")
    with pytest.raises(ConfigError) as caught:
        load_settings(ChainSettings, registry="0x12", confirmations=0, rpc_urls=["ftp://x"])
    message = str(caught.value)
    assert "\n" not in message
    for field in ("chain_id", "registry", "confirmations", "rpc_urls"):
        assert field in message


def test_secret_values_never_appear_in_errors() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(ChainSettings, keystore_password=["hunter2-secret"], chain_id=-1)
    assert "keystore_password" in str(caught.value)
    assert "hunter2-secret" not in str(caught.value)


def test_secret_is_redacted_in_repr() -> None:
    settings = load_settings(ChainSettings, keystore_password="hunter2-secret")
    assert "hunter2-secret" not in repr(settings)


def test_urls_with_keys_are_redacted_in_url_errors() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(ChainSettings, rpc_urls=["wss://rpc.example/v3/SECRET"])
    assert "rpc_urls" in str(caught.value)
    assert "SECRET" not in str(caught.value)


def test_require_registry() -> None:
    with pytest.raises(ConfigError, match="--registry"):
        load_settings(ChainSettings).require_registry()


@pytest.mark.parametrize("chain_id", [137, 80002, 1])
def test_dev_accounts_are_refused_off_local_chains(chain_id: int) -> None:
    with pytest.raises(ConfigError, match="public test keys"):
        require_dev_chain(chain_id)
    require_dev_chain(31337)


@pytest.mark.parametrize(
    "value",
    ["0x" + "ab" * 20 + "\n", "0x" + "ab" * 20 + " ", " 0x" + "ab" * 20, "0x" + "ab" * 19, "ab" * 21],
)
def test_an_address_is_the_whole_value_not_a_prefix(value: str) -> None:
    with pytest.raises(ValueError, match="20-byte hex address"):
        normalize_address(value)


@pytest.mark.parametrize("url", ["http://127.0.0.1:8545\n", "http://a b", "ftp://x", "http://"])
def test_an_http_url_has_no_whitespace_and_a_host(url: str) -> None:
    assert not is_http_url(url)
    assert is_http_url("https://polygon-rpc.example/v1/key")


def test_a_flag_the_settings_do_not_declare_is_an_error_not_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FINVAULT_ISSUER_ONLY_SETTING", "ignored")  # one environment, several roles
    assert load_settings(ChainSettings, chain_id=None).chain_id == 31337
    for value in ("x", None):  # even unset: the flag reached the wrong settings
        with pytest.raises(TypeError, match="ChainSettings has no setting out_dir"):
            load_settings(ChainSettings, out_dir=value)
