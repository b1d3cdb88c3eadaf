"""Team budgets and rate limits shared by every sidecar of a namespace (docs/budgets.md).

``windows`` and ``protocol`` are the contract with the operator (window keys, allowance sizes, the
wire format of an allowance request); ``ledger`` is the sidecar's pure local allowance; ``allowances``
is the edge that refills it from the operator, through ``pilotfish.upstream``.
"""
