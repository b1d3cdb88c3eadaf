"""Inbound dialects: client formats other than OpenAI's, translated to and from the canonical one."""
