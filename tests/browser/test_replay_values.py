"""What a replay needs before it runs: parameters, secrets, how steps are described (no browser needed)."""

from __future__ import annotations

import pytest

from emergent.browser.model import Action, Param, Script, Target
from emergent.browser.replay import step_text, substitute, values_for
from emergent.errors import ValidationError


def _script() -> Script:
    return Script(name="login", params=[Param(name="email"), Param(name="country", default="Canada")],
                  actions=[Action(kind="navigate", value="http://127.0.0.1:1/login"),
                           Action(kind="fill", target=Target.of("label=Email"), value="${params.email}"),
                           Action(kind="fill", target=Target.of("label=Password"), value="pw: ${secrets.lab_pw}"),
                           Action(kind="select", target=Target.of("label=Country"), value="${params.country}")])


def test_given_values_and_defaults_fill_the_parameters() -> None:
    assert values_for(_script(), {"email": "a@b.org"}, {"lab_pw": "s3cret"}) == {"email": "a@b.org",
                                                                                 "country": "Canada"}


def test_missing_parameters_and_secrets_are_named_together() -> None:
    with pytest.raises(ValidationError) as err:
        values_for(_script(), {}, {})
    assert "parameter(s) email" in err.value.message and "secret(s) lab_pw" in err.value.message
    assert err.value.missing == ["email"] and err.value.missing_secrets == ["lab_pw"]


def test_an_unknown_parameter_is_refused_naming_the_declared_ones() -> None:
    with pytest.raises(ValidationError, match="no parameter.*emial") as err:
        values_for(_script(), {"emial": "x", "email": "y"}, {"lab_pw": "p"})
    assert "country, email" in err.value.hint


def test_secrets_are_revealed_only_to_the_call_that_types_them() -> None:
    vals, secrets = {"email": "a@b.org", "country": "Canada"}, {"lab_pw": "s3cret"}
    assert substitute("pw: ${secrets.lab_pw}", vals, secrets, reveal=True) == "pw: s3cret"
    assert substitute("pw: ${secrets.lab_pw}", vals, secrets, reveal=False) == "pw: (secret lab_pw)"
    shown = [step_text(a, vals, secrets) for a in _script().actions]
    assert shown[1] == "fill label 'Email' 'a@b.org'"
    assert shown[2] == "fill label 'Password' 'pw: (secret lab_pw)'"
    assert not any("s3cret" in s for s in shown)


def test_a_parameter_value_cannot_pull_a_secret_in() -> None:
    vals, secrets = {"email": "${secrets.lab_pw}", "country": "x"}, {"lab_pw": "s3cret"}
    assert substitute("${params.email}", vals, secrets, reveal=True) == "${secrets.lab_pw}"  # typed literally


def test_errors_are_scrubbed_of_any_configured_secret_not_only_the_scripts() -> None:
    from emergent.browser.replay import _Scrubber

    scrub = _Scrubber({"lab_pw": "s3cret", "api_token": "tok-123456", "pin": "42"}, ["lab_pw"])
    assert scrub("s3cret tok-123456 42") == "(secret lab_pw) (secret api_token) 42"
