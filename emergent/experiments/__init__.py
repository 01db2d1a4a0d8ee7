"""Experiments and self-improvement: config registry, A/B experiments, statistics, the cycle.

Modules: ``registry`` (versioned tunables), ``service`` (online and offline experiments and their
decisions), ``stats`` (tests, bootstrap, mSPRT, SRM), ``cycle`` (baseline → hypotheses →
experiments → decision → tracking), ``workloads`` (recorded recall workloads such as LoCoMo),
``gate`` (the autonomy-gate contract). Nothing is imported here, so ``import emergent`` stays light.
"""
