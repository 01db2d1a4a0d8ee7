"""Browser automation: Playwright on this machine's Chromium, behind the host allow-list and the gate.

``ws.browser`` (:class:`~emergent.browser.session.BrowserService`) opens sessions, records what a
person or an agent does into a replayable :class:`~emergent.browser.model.Script`, replays scripts
with self-healing locators, and extracts tables into polars through
:class:`~emergent.browser.model.ExtractionTemplate` s. The tools ``browser.open``, ``browser.act``,
``browser.extract`` and ``browser.replay`` put the same through the gate.
"""

from emergent.browser.model import (
    Action,
    Candidate,
    ExtractionTemplate,
    FieldSpec,
    Fingerprint,
    Pagination,
    Param,
    ReplayResult,
    Script,
    StepOutcome,
    Target,
)

__all__ = ["Action", "Candidate", "ExtractionTemplate", "FieldSpec", "Fingerprint", "Pagination", "Param",
           "ReplayResult", "Script", "StepOutcome", "Target"]
