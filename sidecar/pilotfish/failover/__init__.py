"""The router core. Everything here except ``engine`` is pure: no I/O, the clock and the random
generator passed in, so every decision is a unit test away."""
