"""Traces, metrics and stream health for operators."""
