"""render(): ModelClass + ProviderCredential objects → the routes document, and why each member is
in or out. Pure: the operator, ``pilotfish render`` and ``pilotfish local`` all call this one function.

A member is excluded, never the whole namespace, when its credential is missing, its Secret is
missing, or its credential fails the class's compliance requirement; a class with no member left is
left out of the document and reported. One broken object never breaks the others.

The api's pydantic specs become the document's runtime specs (``pilotfish.specs``) here, through
``ApiModel.to_runtime``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence, Set

from pilotfish.api import base, budget, credential, manifests, modelclass
from pilotfish.api import tiers as tiers_api  # `tiers` is also a local name below
from pilotfish.routes import document, loader
from pilotfish.specs import budget as budget_specs
from pilotfish.specs import credential as credential_specs
from pilotfish.specs import modelclass as modelclass_specs
from pilotfish.specs import refs as refs_specs
from pilotfish.specs import tiers as tiers_specs

# Reasons, as status conditions and `pilotfish render` show them.
CREDENTIAL_NOT_FOUND = "CredentialNotFound"
SECRET_NOT_FOUND = "SecretNotFound"
SECRET_KEY_MISSING = "SecretKeyMissing"
COMPLIANCE_EXCLUDED = "ComplianceExcluded"
NO_ELIGIBLE_MEMBERS = "NoEligibleMembers"
TIER_UNAVAILABLE = "TierUnavailable"
NO_AVAILABLE_TIERS = "NoAvailableTiers"


@dataclasses.dataclass(frozen=True)
class ClassReport:
    name: str
    members: tuple[modelclass.MemberStatus, ...]
    canary_problem: str = ""  # why a canary with weight could not be routed
    tiers: tuple[str, ...] | None = None  # a class with tiers: the tier classes that can serve
    tier_problems: tuple[str, ...] = ()  # why a tier of the ladder cannot

    @property
    def eligible(self) -> int:
        return sum(1 for member in self.members if member.eligible)

    @property
    def serves(self) -> bool:
        """Whether the class is in the routes document: an eligible member, or an available tier."""
        return bool(self.tiers) if self.tiers is not None else self.eligible > 0


@dataclasses.dataclass(frozen=True)
class RenderResult:
    document: document.RoutesDocument
    reports: tuple[ClassReport, ...]
    budget_problems: tuple[str, ...] = ()  # a Budget naming a class the document does not serve

    def problems(self) -> list[str]:
        """Human-readable lines for every excluded member, every class left out and every Budget that
        names a class not served."""
        lines = list(self.budget_problems)
        for report in self.reports:
            for member in report.members:
                if not member.eligible:
                    lines.append(
                        f'ModelClass "{report.name}": member {member.credential_ref}/{member.model} '
                        f"excluded ({member.reason}): {member.message}"
                    )
            if report.canary_problem:
                lines.append(f'ModelClass "{report.name}": {report.canary_problem}')
            lines.extend(f'ModelClass "{report.name}": {TIER_UNAVAILABLE}: {p}' for p in report.tier_problems)
            if report.tiers is not None and not report.tiers:
                lines.append(f'ModelClass "{report.name}": {NO_AVAILABLE_TIERS}: no tier can serve this class')
            elif report.tiers is None and report.eligible == 0:
                lines.append(f'ModelClass "{report.name}": {NO_ELIGIBLE_MEMBERS}: no member can serve this class')
        return lines


def render(
    *,
    namespace: str,
    classes: Sequence[modelclass.ModelClass],
    credentials: Sequence[credential.ProviderCredential],
    secrets_present: Mapping[str, Set[str]] | None = None,
    canary_weights: Mapping[str, int] | None = None,
    budgets: Sequence[budget.Budget] = (),
) -> RenderResult:
    """``secrets_present`` maps Secret name → keys; None means "do not check Secrets".
    ``canary_weights`` maps class → the weight the operator's canary stepper set (absent: 0, no slice)."""
    by_name = {c.metadata.name: c for c in credentials}
    routes: dict[str, document.ClassRoute] = {}
    reports = []
    tiered = [c for c in classes if c.spec.tiers is not None]
    for cls in sorted((c for c in classes if c.spec.tiers is None), key=lambda c: c.metadata.name):
        members, statuses = _resolve_members(cls.spec, by_name, secrets_present)
        canary_route, canary_problem = _canary(
            cls.spec, by_name, secrets_present, (canary_weights or {}).get(cls.metadata.name, 0)
        )
        reports.append(ClassReport(name=cls.metadata.name, members=tuple(statuses), canary_problem=canary_problem))
        if members:
            routes[cls.metadata.name] = document.ClassRoute(
                name=cls.metadata.name,
                members=tuple(members),
                canary=canary_route,
                routing=cls.spec.routing.to_runtime(modelclass_specs.RoutingSpec),
                timeouts=cls.spec.timeouts.to_runtime(modelclass_specs.TimeoutsSpec),
                health=cls.spec.health.to_runtime(modelclass_specs.HealthSpec),
                streaming=cls.spec.streaming.to_runtime(modelclass_specs.StreamingSpec),
                limits=cls.spec.limits.to_runtime(modelclass_specs.LimitsSpec),
            )
    for cls in sorted(tiered, key=lambda c: c.metadata.name):  # after the classes their ladders name
        tiers, problems = _resolve_tiers(cls.spec.tiers, routes) if cls.spec.tiers else (None, [])
        reports.append(
            ClassReport(
                name=cls.metadata.name, members=(), tiers=tiers.ladder if tiers else (), tier_problems=tuple(problems)
            )
        )
        if tiers is not None:
            routes[cls.metadata.name] = document.ClassRoute(name=cls.metadata.name, members=(), tiers=tiers)
    reports.sort(key=lambda report: report.name)
    limits = {b.metadata.name: b.spec.to_runtime(budget_specs.BudgetSpec) for b in budgets}
    built = document.RoutesDocument(namespace=namespace, classes=routes, budgets=limits)
    return RenderResult(
        # msgspec checks bounds when it decodes, not when code constructs: read back as a sidecar will read
        # it, so a document the operator writes is one every sidecar accepts (DocumentError otherwise)
        document=document.RoutesDocument.from_json(built.to_json()),
        reports=tuple(reports),
        budget_problems=tuple(_budget_problems(budgets, routes)),
    )


def _budget_problems(budgets: Sequence[budget.Budget], routes: Mapping[str, document.ClassRoute]) -> list[str]:
    """A Budget still applies when it names a class that does not serve (it may come later), but say so:
    a downgrade to nowhere is a reject."""
    lines = []
    for each in sorted(budgets, key=lambda b: b.metadata.name):
        subject = f'Budget "{each.metadata.name}"'
        lines += [
            f'{subject}: spec.classes[{i}]: "{name}" is not a class that can serve; it covers nothing yet'
            for i, name in enumerate(each.spec.classes)
            if name not in routes
        ]
        cheaper = each.spec.downgrade_to
        if cheaper is not None and cheaper not in routes:
            lines.append(
                f'{subject}: spec.downgradeTo: "{cheaper}" is not a class that can serve; '
                "requests over this budget are rejected (429) instead"
            )
    return lines


def _resolve_tiers(
    spec: tiers_api.TiersSpec, routes: Mapping[str, document.ClassRoute]
) -> tuple[document.TiersRoute | None, list[str]]:
    """The ladder cut to the classes that serve; rules to a missing tier dropped, a missing default moved up
    the ladder (else down), each reported. None when no tier of the ladder serves."""
    problems = []
    ladder = []
    for name in spec.ladder:
        route = routes.get(name)
        if route is None or route.tiers is not None:
            problems.append(f'tier "{name}" ' + ("has tiers itself" if route else "is not a class that can serve"))
        else:
            ladder.append(name)
    if not ladder:
        return None, problems
    default = spec.default
    if default not in ladder:
        position = spec.ladder.index(default)
        above = [t for t in spec.ladder[position:] if t in ladder]
        default = above[0] if above else ladder[-1]
        problems.append(f'default tier "{spec.default}" is unavailable: "{default}" serves instead')
    rules = tuple(rule.to_runtime(tiers_specs.TierRule) for rule in spec.rules if rule.tier in ladder)
    return document.TiersRoute(ladder=tuple(ladder), default=default, rules=rules, escalate=spec.escalate), problems


def _optional(spec: base.ApiModel | None, twin: type[base.Twin]) -> base.Twin | None:
    return None if spec is None else spec.to_runtime(twin)


def render_manifests(parsed: manifests.Manifests, *, namespace: str) -> RenderResult:
    """Render what a folder of manifests holds, checking Secrets against the Secrets it holds."""
    present = {secret.name: set(secret.data) for secret in parsed.secrets} if parsed.secrets else None
    return render(
        namespace=namespace,
        classes=parsed.classes,
        credentials=parsed.credentials,
        secrets_present=present,
        budgets=parsed.budgets,
    )


def snapshot_from_manifests(parsed: manifests.Manifests, *, namespace: str) -> tuple[loader.Snapshot, RenderResult]:
    """Local mode: render manifests as the operator would and take keys from their Secrets."""
    result = render_manifests(parsed, namespace=namespace)
    values = {(s.name, key): value for s in parsed.secrets if s.namespace == namespace for key, value in s.data.items()}
    needed = {
        (m.api_key_ref.name, m.api_key_ref.key)
        for route in result.document.classes.values()
        for m in route.members
        if m.api_key_ref
    }
    keys = {ref: values[ref] for ref in needed if ref in values}
    return loader.Snapshot(document=result.document, keys=keys, digest=result.document.digest()), result


def _resolve_members(
    spec: modelclass.ModelClassSpec,
    credentials: Mapping[str, credential.ProviderCredential],
    secrets_present: Mapping[str, Set[str]] | None,
) -> tuple[list[document.MemberRoute], list[modelclass.MemberStatus]]:
    routes = []
    statuses = []
    weighted = spec.routing.strategy is modelclass.Strategy.WEIGHTED
    ordered = sorted(enumerate(spec.members), key=lambda pair: (_priority(pair, weighted=weighted), pair[0]))
    for index, member in ordered:
        found = credentials.get(member.credential_ref)
        reason, message = _exclusion(member, found, spec.compliance.require, secrets_present)
        statuses.append(
            modelclass.MemberStatus(
                credential_ref=member.credential_ref,
                model=member.model,
                eligible=not reason,
                reason=reason,
                message=message,
            )
        )
        if found is not None and not reason:
            routes.append(_member_route(member, found, priority=_priority((index, member), weighted=weighted)))
    return routes, statuses


def _canary(
    spec: modelclass.ModelClassSpec,
    credentials: Mapping[str, credential.ProviderCredential],
    secrets_present: Mapping[str, Set[str]] | None,
    weight: int,
) -> tuple[document.CanaryRoute | None, str]:
    """The canary slice, resolved and checked like any member (compliance included)."""
    if spec.canary is None or weight <= 0:
        return None, ""
    wanted = spec.canary.member
    as_member = modelclass.MemberSpec(
        credential_ref=wanted.credential_ref,
        model=wanted.model,
        context_window=wanted.context_window,
        max_output_tokens=wanted.max_output_tokens,
        pricing=wanted.pricing,
    )
    found = credentials.get(wanted.credential_ref)
    reason, message = _exclusion(as_member, found, spec.compliance.require, secrets_present)
    if found is None or reason:
        return None, f"canary {wanted.credential_ref}/{wanted.model} excluded ({reason}): {message}"
    header = spec.canary.stickiness.header if spec.canary.stickiness else None
    return document.CanaryRoute(
        member=_member_route(as_member, found, priority=0), weight=weight, stickiness_header=header
    ), ""


def _priority(pair: tuple[int, modelclass.MemberSpec], *, weighted: bool) -> int:
    """An explicit priority; else 0 under ``weighted`` (one pool split by weight), else list position."""
    index, member = pair
    if member.priority is not None:
        return member.priority
    return 0 if weighted else index


def _exclusion(
    member: modelclass.MemberSpec,
    found: credential.ProviderCredential | None,
    require: Mapping[str, str],
    secrets_present: Mapping[str, Set[str]] | None,
) -> tuple[str, str]:
    if found is None:
        return (
            CREDENTIAL_NOT_FOUND,
            f'ProviderCredential "{member.credential_ref}" does not exist in this namespace',
        )
    labels = found.spec.compliance
    for label, wanted in sorted(require.items()):
        if labels.get(label) != wanted:
            have = f'has {label}="{labels[label]}"' if label in labels else f"has no {label} label"
            return (
                COMPLIANCE_EXCLUDED,
                f'requires {label}="{wanted}"; credential "{member.credential_ref}" {have}',
            )
    ref = found.spec.api_key_secret_ref
    if ref is not None and secrets_present is not None:
        if ref.name not in secrets_present:
            return SECRET_NOT_FOUND, f'Secret "{ref.name}" does not exist'
        if ref.key not in secrets_present[ref.name]:
            return SECRET_KEY_MISSING, f'Secret "{ref.name}" has no key "{ref.key}"'
    return "", ""


def _member_route(
    member: modelclass.MemberSpec, found: credential.ProviderCredential, *, priority: int
) -> document.MemberRoute:
    spec = found.spec
    return document.MemberRoute(
        id=f"{member.credential_ref}/{member.model}",
        credential=member.credential_ref,
        provider=spec.provider,
        base_url=spec.resolved_base_url(),
        api_key_ref=_optional(spec.api_key_secret_ref, refs_specs.SecretKeyRef),
        api_version=spec.api_version,
        model=member.model,
        priority=priority,
        weight=member.weight,
        context_window=member.context_window,
        max_output_tokens=member.max_output_tokens,
        pricing=_optional(member.pricing, modelclass_specs.Pricing),
        prefill=spec.prefill() if member.prefill is None else member.prefill,
        allow_plain_http=spec.allow_plain_http or None,
        probe=_optional(spec.probe, credential_specs.ProbeSpec),
        rpm=member.rpm,
        tpm=member.tpm,
    )
