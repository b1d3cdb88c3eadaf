"""The router core. Everything here except ``engine`` is pure: no I/O, no asyncio, no global state;
the clock (``now``) and the random generator (``rng``) are passed in, so every decision is a unit
test away.

``policy`` (what each failure kind means), ``breaker`` (one circuit per member), ``budget`` (retries
as a share of first attempts), ``health`` (breakers and measurements per member, across reloads),
``pinning`` (conversation → member), ``plan`` (the order one request tries members in), and
``engine``, the one async loop that uses them all.
"""
