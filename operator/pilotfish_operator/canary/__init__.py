"""Canary rollouts: the pure stepper, the analysis queries, and the timer that runs them."""
