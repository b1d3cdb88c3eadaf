"""The API port: OpenAI-compatible endpoints on localhost.

request in (``chat``) → route (``failover.plan``) → attempt (``failover.engine``) → translate
(``providers``) → respond (``chat``, ``assemble``). ``errors`` is the only producer of error JSON.
"""
