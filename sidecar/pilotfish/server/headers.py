"""Every x-pilotfish-* response header name, declared once."""

CLASS = "x-pilotfish-class"
PROVIDER = "x-pilotfish-provider"
MODEL = "x-pilotfish-model"
MEMBER = "x-pilotfish-member"
ATTEMPTS = "x-pilotfish-attempts"
FAILOVER_REASON = "x-pilotfish-failover-reason"
RETRY_REASON = "x-pilotfish-retry-reason"
ROUTES_DIGEST = "x-pilotfish-routes"
TIER = "x-pilotfish-tier"  # a class with tiers: the tier that answered
TIER_REASON = "x-pilotfish-tier-reason"  # why its rules chose the first tier: rules[N] or default
TIER_ESCALATED_FROM = "x-pilotfish-tier-escalated-from"  # the tier chosen first, when a higher one answered
BUDGET = "x-pilotfish-budget"  # the Budget that refused or downgraded this request
DOWNGRADED_TO = "x-pilotfish-downgraded-to"  # the class that served, when a spent Budget downgraded the request
