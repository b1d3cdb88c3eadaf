"""Test support beyond unit tests: the real control plane (testenv) and the kind path (kind/)."""
