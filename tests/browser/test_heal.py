"""Healing's scoring and choosing, over fingerprints (no browser needed)."""

from __future__ import annotations

from emergent.browser import heal
from emergent.browser.model import Candidate, Fingerprint, Target


def _email(label: str = "Email", **attrs: str) -> Fingerprint:
    return Fingerprint(tag="input", role="textbox", name=label, label=label, heading="Sign in to the lab portal",
                       attrs={"id": "email", "name": "email", "type": "email", **attrs}, index=0)


PASSWORD = Fingerprint(tag="input", name="Password", label="Password", heading="Sign in to the lab portal",
                       attrs={"id": "u-92", "name": "password", "type": "password"}, index=None)
PROJECT = Fingerprint(tag="input", role="textbox", name="Project code", heading="Sign in to the lab portal",
                      attrs={"id": "u-95", "name": "project", "placeholder": "Project code"}, index=1)


def _button(text: str, index: int = 0, heading: str = "Sign in to the lab portal") -> Fingerprint:
    return Fingerprint(tag="button", role="button", name=text, text=text, heading=heading,
                       attrs={"type": "submit"}, index=index)


def test_text_similarity_keeps_reworded_and_respelled_labels_similar() -> None:
    assert heal.text_similarity("Sign in", "sign  IN") == 1.0
    assert 0.6 < heal.text_similarity("Sign in", "Sign in now") < 1.0
    assert 0.4 < heal.text_similarity("Email", "E-mail address") < 0.6
    assert heal.text_similarity("Email", "Password") < 0.2
    assert heal.text_similarity("", "x") == 0.0 and heal.text_similarity(None, None) == 0.0


def test_the_relabelled_email_field_wins_clearly_over_the_other_fields() -> None:
    mutated = [PASSWORD, PROJECT, _email("E-mail address", id="u-91"), _button("Sign in now")]
    d = heal.choose(_email(), mutated)
    assert d.healed and d.index == 2, d
    assert d.score >= heal.THRESHOLD and d.score - d.runner_up >= heal.MARGIN


def test_ids_and_test_ids_are_not_compared_so_a_rename_does_not_lower_the_score() -> None:
    same = _email()
    renamed = _email(id="u-91", **{"data-testid": "x"})
    assert heal.score(same, renamed) == heal.score(same, same) == 1.0


def test_the_reworded_submit_button_is_chosen() -> None:
    mutated = [Fingerprint(tag="a", role="link", name="Home", text="Home", attrs={"href": "/"}, index=0),
               PASSWORD, _button("Sign in now")]
    d = heal.choose(_button("Sign in"), mutated)
    assert d.index == 2, d


def test_two_equally_similar_elements_are_ambiguous_and_not_chosen() -> None:
    rows = [_button("Delete", index=i, heading="Results") for i in range(3)]
    d = heal.choose(_button("Delete", index=1, heading="Results"), rows)
    assert not d.healed and "ambiguous" in d.reason


def test_an_absent_element_is_not_chosen_even_when_it_is_the_only_button() -> None:
    d = heal.choose(_button("Delete everything", heading="Danger zone"), [PASSWORD, _button("Sign in now")])
    assert not d.healed and "not" not in d.reason[:2] and "threshold" in d.reason
    assert heal.choose(_button("x"), []).reason == "the page has no candidate elements"


def test_a_link_that_replaced_a_button_is_penalised_for_the_kind_mismatch() -> None:
    link = Fingerprint(tag="a", role="link", name="Sign in", text="Sign in", heading="Sign in to the lab portal",
                       index=0)
    button = _button("Sign in")
    assert heal.score(button, link) < 0.5 * heal.score(button, button) + 0.01


def test_merged_targets_lead_with_what_worked_and_keep_the_old_candidates() -> None:
    old = Target(candidates=[Candidate(kind="testid", value="sign-in"),
                             Candidate(kind="role", value="button", name="Sign in")], description="the button")
    new = [Candidate(kind="testid", value="login-submit"), Candidate(kind="role", value="button", name="Sign in")]
    fp = _button("Sign in now")
    t = heal.merged(old, new, fp)
    assert [c.value for c in t.candidates] == ["login-submit", "button", "sign-in"]
    assert t.fingerprint == fp and t.description == "the button"


def test_the_model_prompt_numbers_the_elements_and_names_what_failed() -> None:
    target = Target(candidates=[Candidate(kind="testid", value="sign-in")], fingerprint=_button("Sign in"))
    msgs = heal.model_messages(target, "click", [PASSWORD, _button("Sign in now")])
    body = msgs[-1]["content"]
    assert "0: <input>" in body and '1: <button> role=button name="Sign in now"' in body
    assert "testid 'sign-in'" in body


def test_a_hand_written_target_implies_a_fingerprint_from_its_locators() -> None:
    t = Target(candidates=[Candidate(kind="role", value="button", name="Sign in"),
                           Candidate(kind="placeholder", value="Project code")])
    fp = heal.implied_fingerprint(t)
    assert fp is not None and fp.role == "button" and fp.name == "Sign in"
    assert fp.attrs == {"placeholder": "Project code"}
    assert heal.choose(fp, [PASSWORD, _button("Sign in now")]).index == 1
    assert heal.implied_fingerprint(Target.of("#submit-btn")) is None  # CSS alone: nothing to compare


def test_kind_matches_refuses_only_when_tag_and_role_both_differ() -> None:
    link = Fingerprint(tag="a", role="link", name="Home")
    assert not heal.kind_matches(_button("Sign in"), link)
    assert heal.kind_matches(_button("Sign in"), Fingerprint(tag="input", role="button", attrs={"type": "submit"}))
    assert heal.kind_matches(_email(), PROJECT)
