"""The operator's half of team budgets (docs/budgets.md): the namespace's counters and the allowance endpoint.

``accounts`` is the pure arithmetic on a Budget's status (reserve a block, add reported usage, roll a
window, which thresholds were crossed); ``granting`` serves the sidecars and writes through ``kube``.
"""
