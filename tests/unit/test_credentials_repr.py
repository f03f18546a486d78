"""Spoke credentials never show their secret or token when printed, logged or shown in a traceback."""

from __future__ import annotations

from trainctl.aws.clients import Credentials


def test_credentials_show_only_the_access_key_id() -> None:
    credentials = Credentials("ASIAEXAMPLEKEY", "secret-value-never-shown", "token-value-never-shown")
    for text in (repr(credentials), str(credentials), f"{credentials}", repr([credentials])):
        assert "ASIAEXAMPLEKEY" in text
        assert "secret-value-never-shown" not in text and "token-value-never-shown" not in text
    assert credentials.secret_access_key == "secret-value-never-shown"  # the value itself is whole
