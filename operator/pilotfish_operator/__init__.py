"""The Pilotfish operator (kopf): renders ModelClass and ProviderCredential into routes ConfigMaps.

It imports ``pilotfish`` (the API models and the pure ``routes.render``); ``pilotfish`` never imports
it back. The reconcilers, webhook and chart come with the operator issue; this package holds the
entry point so the distribution, image and CLI are already shaped for it.
"""
