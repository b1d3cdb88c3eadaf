"""Small builders for the pure failover tests: a fake clock and members."""

from pilotfish.api import credential
from pilotfish.routes import document


class FakeClock:
    def __init__(self, start: float = 1000.0) -> None:
        self.t = start

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


def member(name: str, priority: int = 0, weight: int = 1, window: int | None = None) -> document.MemberRoute:
    return document.MemberRoute(
        id=f"{name}/m",
        credential=name,
        provider=credential.ProviderType.OPENAI,
        base_url="http://x",
        model="m",
        priority=priority,
        weight=weight,
        context_window=window,
    )
