"""Every x-pilotfish-* response header name, declared once."""

CLASS = "x-pilotfish-class"
PROVIDER = "x-pilotfish-provider"
MODEL = "x-pilotfish-model"
MEMBER = "x-pilotfish-member"
ATTEMPTS = "x-pilotfish-attempts"
FAILOVER_REASON = "x-pilotfish-failover-reason"
ROUTES_DIGEST = "x-pilotfish-routes"
