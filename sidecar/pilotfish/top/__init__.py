"""``pilotfish top``: a live terminal view of one or many sidecars, from their admin endpoints."""
