"""Provider adapters: one module per provider type, pure translation and error classification.

Every adapter module exposes the same four entries (see ``base.Adapter``); ``registry`` is the one
switch from ``ProviderType`` to module. Adapters never import one another and never do I/O.
"""
