"""Faust stream processors: identity resolution and opt-outs."""
