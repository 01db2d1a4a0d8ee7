"""Signals and proposals: analyzers → signals with evidence → proposals → approval → experiment.

Modules: ``signals`` (analyzers over telemetry, memory analytics, approvals and job runs),
``service`` (the proposal lifecycle, dedup, approval through the gate), ``writer`` (LLM or template
text), ``impact`` (affected components and estimated effect), ``codegen`` (validated unified diffs),
``preferences`` (a model of past decisions that ranks new proposals).
"""
