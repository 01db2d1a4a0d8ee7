"""Workspace-level operations: backup, verification and restore of a whole workspace
(:mod:`emergent.workspace.backup`), and the audited-action helper every service uses
(:mod:`emergent.workspace.audited`).

Nothing is imported here, so ``import emergent`` stays light; the functions take their stores,
auditor and clock explicitly (the composition root, :class:`emergent.workstation.Workstation`,
passes them), never the Workstation.
"""
