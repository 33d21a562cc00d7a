"""Deadlines and what happens when they pass: the policy, the sweep, weekly summaries."""
