"""Wire types only: the shapes on the network, no behaviour. OpenAI chat is the canonical hub."""
