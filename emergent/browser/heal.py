"""Self-healing: find the element a recorded target meant on a page that changed since.

Pure functions over :class:`~emergent.browser.model.Fingerprint` s, testable without a browser; the
replay (:mod:`emergent.browser.replay`) feeds them the page's inventory
(:func:`emergent.browser.locators.inventory`) when a target's recorded candidates all fail.

**Similarity.** :func:`score` compares the recorded fingerprint with one element's fingerprint,
feature by feature, over the features the *recorded* element had (a feature it did not have neither
helps nor hurts a candidate). Two groups, each a weighted mean in [0, 1]:

- *content* (what the element is called; 75 % of the score, :data:`CONTENT_WEIGHTS`): accessible
  name 3, naming attributes 3 (name, placeholder, href, title, alt, aria-label, ...: equal → 1, else
  text similarity, missing → 0; the mean over the recorded ones), label 2, visible text 2;
- *structure* (what kind of element and where; 25 %, :data:`STRUCTURE_WEIGHTS`): ARIA role 2, tag 1,
  input type 1, the heading above it 1 (text similarity), its position among same-role elements 0.5
  (1 / (1 + distance)).

Content dominates because structure is shared: every submit button of a form has the same tag, role,
type and heading, so "Delete everything" must never look like "Sign in now" just because both are
buttons (a flat weighted mean scored them 0.52, above the threshold: that is the test that made the
split). Ids, classes and test ids are deliberately not compared: they are what a redesign renames, and a
locator built on them is what broke in the first place. An element whose tag *and* role both differ
from the recorded one has its score halved (a link is not the button it replaced).

:func:`text_similarity` is the larger of a token-set Jaccard (``"Sign in"`` vs ``"Sign in now"``:
0.67 by tokens, 0.73 by trigrams) and a Dice coefficient over character trigrams of the text without spaces and punctuation
(``"Email"`` vs ``"E-mail address"``: 0.46), so both reworded and re-spelled labels keep some
similarity. Written by hand (difflib's ratio is order-sensitive and slower; rapidfuzz is not a
dependency): two set operations per pair over a few hundred elements is microseconds.

**Choosing.** :func:`choose` heals only when the best element scores at least ``threshold``
(:data:`THRESHOLD`) *and* beats the runner-up by ``margin`` (:data:`MARGIN`). Two equally good
elements (two "Delete" buttons) or none good enough → no choice, and the replay fails saying what it
tried: a replay that stops is recoverable, a click on the wrong element may not be.

**The model** (when one is configured) is asked last, to pick one of the top :data:`MODEL_TOP`
elements by number, or none (:func:`ask_model`); an answer that is not a valid number in range is
treated as none.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from emergent.browser.model import Candidate, Fingerprint, Target

if TYPE_CHECKING:
    from emergent.providers.llm import ChatModel

#: what the element *is called* (its name, label, text and naming attributes): the evidence healing needs
CONTENT_WEIGHTS: dict[str, float] = {"name": 3.0, "attrs": 3.0, "label": 2.0, "text": 2.0}
#: what *kind* of element it is and where: the same for every button of a form, so it only breaks ties
STRUCTURE_WEIGHTS: dict[str, float] = {"role": 2.0, "tag": 1.0, "type": 1.0, "heading": 1.0, "index": 0.5}
WEIGHTS: dict[str, float] = {**CONTENT_WEIGHTS, **STRUCTURE_WEIGHTS}
#: the share of the score that comes from the content features
CONTENT_SHARE = 0.75
#: naming attributes (kept by a redesign), compared by :func:`score`
STABLE_ATTRS: tuple[str, ...] = ("name", "placeholder", "href", "title", "alt", "aria-label", "action", "for", "src",
                                 "download", "target", "method")
THRESHOLD = 0.5
MARGIN = 0.1
MODEL_TOP = 10
KIND_MISMATCH = 0.5

_NON_ALNUM = re.compile(r"[^0-9a-z]+")


def normalise(text: str | None) -> str:
    """Lower case, every run of non-alphanumerics one space, trimmed."""
    return _NON_ALNUM.sub(" ", (text or "").lower()).strip()


def tokens(text: str | None) -> frozenset[str]:
    return frozenset(normalise(text).split())


def trigrams(text: str | None) -> frozenset[str]:
    s = normalise(text).replace(" ", "")
    if len(s) < 3:
        return frozenset({s}) if s else frozenset()
    return frozenset(s[i:i + 3] for i in range(len(s) - 2))


def text_similarity(a: str | None, b: str | None) -> float:
    """1.0 for the same text (ignoring case, spacing and punctuation), else max(token Jaccard, trigram Dice)."""
    na, nb = normalise(a), normalise(b)
    if not na or not nb:
        return 0.0
    if na == nb:
        return 1.0
    ta, tb = frozenset(na.split()), frozenset(nb.split())
    jaccard = len(ta & tb) / len(ta | tb)
    ga, gb = trigrams(na), trigrams(nb)
    dice = 2 * len(ga & gb) / (len(ga) + len(gb)) if ga and gb else 0.0
    return max(jaccard, dice)


def _attr_similarity(recorded: dict[str, str], seen: dict[str, str]) -> float | None:
    keys = [k for k in STABLE_ATTRS if recorded.get(k)]
    if not keys:
        return None
    total = 0.0
    for k in keys:
        a, b = recorded[k], seen.get(k)
        if b is None:
            continue
        total += 1.0 if a == b else text_similarity(a, b)
    return total / len(keys)


def features(recorded: Fingerprint, seen: Fingerprint) -> dict[str, float]:
    """Each feature's similarity in [0, 1], for the features the recorded element had."""
    out: dict[str, float] = {}
    for key in ("name", "label", "text", "heading"):
        mine = getattr(recorded, key)
        if normalise(mine):
            out[key] = text_similarity(mine, getattr(seen, key))
    attrs = _attr_similarity(recorded.attrs, seen.attrs)
    if attrs is not None:
        out["attrs"] = attrs
    if recorded.role:
        out["role"] = 1.0 if recorded.role == seen.role else 0.0
    if recorded.tag:
        out["tag"] = 1.0 if recorded.tag.lower() == (seen.tag or "").lower() else 0.0
    if recorded.attrs.get("type"):
        out["type"] = 1.0 if recorded.attrs["type"].lower() == (seen.attrs.get("type") or "").lower() else 0.0
    if recorded.index is not None and seen.index is not None:
        out["index"] = 1.0 / (1.0 + abs(recorded.index - seen.index))
    return out


def _mean(feats: dict[str, float], weights: dict[str, float]) -> float | None:
    keys = [k for k in feats if k in weights]
    if not keys:
        return None
    return sum(weights[k] * feats[k] for k in keys) / sum(weights[k] for k in keys)


def score(recorded: Fingerprint, seen: Fingerprint) -> float:
    """How much ``seen`` looks like the recorded element, in [0, 1]: ``CONTENT_SHARE`` × the weighted mean of
    the content features + the rest × that of the structure features (an element recorded with no name, label,
    text or naming attribute scores on structure alone, at most 1 - ``CONTENT_SHARE``: it cannot be healed by
    similarity)."""
    feats = features(recorded, seen)
    content = _mean(feats, CONTENT_WEIGHTS)
    structure = _mean(feats, STRUCTURE_WEIGHTS)
    total = CONTENT_SHARE * (content or 0.0) + (1 - CONTENT_SHARE) * (structure if structure is not None else 1.0)
    if feats.get("tag", 1.0) == 0.0 and feats.get("role", 1.0) == 0.0:
        total *= KIND_MISMATCH
    return round(total, 6)


def rank(recorded: Fingerprint, seen: Sequence[Fingerprint]) -> list[tuple[float, int]]:
    """``(score, index into seen)``, best first (ties keep page order)."""
    scored = [(score(recorded, fp), i) for i, fp in enumerate(seen)]
    return sorted(scored, key=lambda si: (-si[0], si[1]))


@dataclass(frozen=True)
class Decision:
    """What :func:`choose` decided: ``index`` into the inventory, or None with ``reason``."""

    index: int | None
    score: float
    runner_up: float
    reason: str

    @property
    def healed(self) -> bool:
        return self.index is not None


def choose(recorded: Fingerprint, seen: Sequence[Fingerprint], *, threshold: float = THRESHOLD,
           margin: float = MARGIN) -> Decision:
    """The one element clearly most like the recorded one, or none (see the module's *Choosing*)."""
    ranked = rank(recorded, seen)
    if not ranked:
        return Decision(None, 0.0, 0.0, "the page has no candidate elements")
    best, i = ranked[0]
    second = ranked[1][0] if len(ranked) > 1 else 0.0
    if best < threshold:
        return Decision(None, best, second,
                        f"no element is similar enough (best {best:.2f} < threshold {threshold:.2f})")
    if best - second < margin:
        return Decision(None, best, second,
                        f"ambiguous: two elements are about as similar ({best:.2f} and {second:.2f}, "
                        f"margin {margin:.2f} needed)")
    return Decision(i, best, second, f"similarity {best:.2f} (runner-up {second:.2f})")


def summary(fp: Fingerprint, *, limit: int = 80) -> str:
    """One line describing an element, for messages and the model's prompt."""
    parts = [f"<{fp.tag or '?'}>"]
    if fp.role:
        parts.append(f"role={fp.role}")
    for key in ("name", "label", "text", "heading"):
        v = getattr(fp, key)
        if v:
            parts.append(f'{key}="{v[:limit]}"')
    for k in STABLE_ATTRS:
        if fp.attrs.get(k):
            parts.append(f'{k}="{fp.attrs[k][:limit]}"')
    return " ".join(parts)


def implied_fingerprint(target: Target) -> Fingerprint | None:
    """The fingerprint a target's candidates imply when none was recorded (a hand-written
    ``Target.of("label=Email")``): role and name, label, text, placeholder, alt, title. None when they
    imply nothing to compare (CSS and test ids only)."""
    fp = Fingerprint()
    for c in target.candidates:
        if c.kind == "role":
            fp.role = fp.role or c.value
            fp.name = fp.name or c.name
        elif c.kind in ("label", "text"):
            if getattr(fp, c.kind) is None:
                setattr(fp, c.kind, c.value)
        elif c.kind in ("placeholder", "alt", "title"):
            fp.attrs.setdefault(c.kind, c.value)
    has_content = any((fp.name, fp.label, fp.text, fp.attrs))
    return fp if has_content else None


# ------------------------------------------------------------------------------ the model
class ModelChoice(BaseModel):
    """The model's answer: the number of the element meant, or null when none of them is it."""

    index: int | None = Field(None, description="the number of the matching element, or null if none matches")
    reason: str = Field("", max_length=1000)


def model_messages(target: Target, action: str, entries: Sequence[Fingerprint]) -> list[dict[str, str]]:
    listing = "\n".join(f"{n}: {summary(fp)}" for n, fp in enumerate(entries))
    recorded = summary(target.fingerprint) if target.fingerprint else target.describe()
    tried = "; ".join(c.describe() for c in target.candidates)
    return [
        {"role": "system", "content": (
            "You repair browser automation scripts. A recorded element can no longer be found because the page "
            "changed. Pick the element on the current page that is the same control (same purpose), or answer "
            'null when none is. Never guess: a wrong click is worse than none. Answer JSON {"index": N or null, '
            '"reason": "..."}.')},
        {"role": "user", "content": (
            f"Action: {action}\nRecorded element: {recorded}\nLocators that failed: {tried}\n\n"
            f"Elements on the page now:\n{listing}")},
    ]


def kind_matches(recorded: Fingerprint, seen: Fingerprint) -> bool:
    """False when the tag and the role both differ (a link offered for a recorded button)."""
    feats = features(recorded, seen)
    return not (feats.get("tag", 1.0) == 0.0 and feats.get("role", 1.0) == 0.0)


def ask_model(model: ChatModel, target: Target, action: str, entries: Sequence[Fingerprint], *,
              redact: Callable[[str], str] | None = None) -> tuple[int | None, str]:
    """Ask ``model`` which of ``entries`` the target is: ``(index or None, why)``. Never raises for a bad answer
    (an answer that is not JSON, not a number in range, or null → None) — nor for a model that fails. The
    messages pass through ``redact`` (the replay removes secret values a page may echo). A pick whose tag and
    role both differ from the recorded element's is refused (a page's text may try to steer the model)."""
    from emergent.errors import EmergentError

    if not entries:
        return None, "no elements to choose from"
    messages = model_messages(target, action, entries)
    if redact is not None:
        messages = [{**m, "content": redact(m["content"])} for m in messages]
    try:
        answer = model.structured(messages, ModelChoice)
    except EmergentError as exc:
        return None, f"the model gave no usable answer ({exc.message})"
    if answer.index is None:
        return None, f"the model found none ({answer.reason[:200]})" if answer.reason else "the model found none"
    if not 0 <= answer.index < len(entries):
        return None, f"the model answered {answer.index}, not one of 0..{len(entries) - 1}"
    recorded = target.fingerprint or implied_fingerprint(target)
    if recorded is not None and not kind_matches(recorded, entries[answer.index]):
        return None, (f"the model picked {summary(entries[answer.index])}, which is not the kind of element "
                      f"recorded ({summary(recorded)}): refused")
    return answer.index, answer.reason[:200]


# ------------------------------------------------------------------------------ healed targets
def merged(old: Target, first: Sequence[Candidate], fingerprint: Fingerprint | None = None) -> Target:
    """``old`` with ``first`` leading its candidates (what worked now), the old ones after (deduplicated,
    at most 20), and the newer fingerprint when given."""
    seen: set[tuple[object, ...]] = set()
    out: list[Candidate] = []
    for c in [*first, *old.candidates]:
        key = (c.kind, c.value, c.name, c.exact, c.nth, c.frame)
        if key in seen:
            continue
        seen.add(key)
        out.append(c)
    return Target(candidates=out[:20], fingerprint=fingerprint or old.fingerprint,
                  description=old.description or out[0].describe())


__all__ = ["MARGIN", "MODEL_TOP", "STABLE_ATTRS", "THRESHOLD", "WEIGHTS", "Decision", "ModelChoice", "ask_model",
           "choose", "features", "implied_fingerprint", "kind_matches", "merged", "model_messages", "normalise", "rank", "score", "summary",
           "text_similarity", "tokens", "trigrams"]
