"""The ``pilotfish`` command: argparse subcommands, each importing its machinery only when run.

pilotfish render -f PATH...         print the routes document the operator would write
pilotfish crds [--out DIR]          generate the CRD YAML from the API models
pilotfish local -f PATH...          serve from manifests on a laptop, reloading on change
pilotfish sidecar --config-dir D    serve from a mounted ConfigMap + Secrets (container mode)
pilotfish mock-provider             a fault-injecting fake provider
pilotfish demo                      mock providers + sidecar + traffic + an outage, live
pilotfish top [--admin URL|-n NS]   live view of sidecars (rates, errors, failovers, p95, circuits)
pilotfish canary ACTION NAME        status/promote/abort/retry/pause/resume a class's canary rollout
pilotfish import litellm CONFIG     a LiteLLM proxy config as Pilotfish manifests (warnings on stderr)
pilotfish operator                  the kopf operator and admission webhook (needs the `operator` extra)
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
from collections.abc import Callable, Sequence

DEFAULT_LISTEN = "127.0.0.1:4000"  # loopback only: the API is for the pod's own containers
DEFAULT_ADMIN = "0.0.0.0:4001"  # in a pod: probes and scrapes come from outside it
LOCAL_ADMIN = "127.0.0.1:4001"  # on a laptop: nobody else needs the admin port
# A streaming client must take each write within this (server.serving.WRITE_SECONDS; not imported
# here: the CLI imports each command's machinery only when it runs)
DEFAULT_WRITE_SECONDS = 30.0


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return 2
    run: Callable[[argparse.Namespace], int] = args.run
    try:
        return run(args)
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pilotfish", description="Multi-provider LLM failover.")
    sub = parser.add_subparsers(metavar="COMMAND")

    render = sub.add_parser("render", help="print the routes document for manifests")
    render.add_argument("-f", "--filename", action="append", required=True, help="file or folder (repeatable)")
    render.add_argument("-n", "--namespace", default="default")
    render.set_defaults(run=_run_render)

    crds = sub.add_parser("crds", help="write the CRD YAML generated from the API models")
    crds.add_argument(
        "--out", action="append", default=None, help="directory to write (repeatable; default: crds and the chart's)"
    )
    crds.add_argument("--check", action="store_true", help="exit 1 if the files differ instead of writing")
    crds.set_defaults(run=_run_crds)

    local = sub.add_parser("local", help="serve from manifests, reloading when they change")
    local.add_argument("-f", "--filename", action="append", required=True, help="file or folder (repeatable)")
    local.add_argument("-n", "--namespace", default="default")
    _add_serving_flags(local, admin=LOCAL_ADMIN)
    local.set_defaults(run=_run_local)

    sidecar = sub.add_parser("sidecar", help="serve from a mounted routes ConfigMap and Secrets")
    sidecar.add_argument("--config-dir", required=True, help="where the pilotfish-routes ConfigMap is mounted")
    sidecar.add_argument("--secrets-dir", required=True, help="where referenced Secrets are mounted, one dir each")
    _add_serving_flags(sidecar, admin=DEFAULT_ADMIN)
    sidecar.add_argument(
        "--budget-url", default=None, help="the operator's allowance endpoint (https://…:9443): enforce the Budgets"
    )
    sidecar.add_argument("--budget-ca-file", default=None, help="the CA of the operator's serving certificate")
    sidecar.add_argument(
        "--budget-token-file",
        default="/var/run/secrets/pilotfish/token",
        help="this pod's ServiceAccount token for audience pilotfish (a projected volume)",
    )
    sidecar.add_argument(
        "--namespace", default=os.environ.get("POD_NAMESPACE", ""), help="this pod's namespace (POD_NAMESPACE)"
    )
    sidecar.set_defaults(run=_run_sidecar)

    mock = sub.add_parser("mock-provider", help="run a fault-injecting fake provider")
    mock.add_argument("--provider", default="openai", choices=["openai", "azure-openai", "anthropic", "gemini"])
    mock.add_argument("--listen", default="127.0.0.1:9101")
    mock.add_argument("--name", default="mock")
    mock.add_argument("--api-key", default=None, help="require this bearer key")
    mock.add_argument("--fault", default=None, help='initial fault as JSON, e.g. {"mode": "status", "status": 503}')
    mock.set_defaults(run=_run_mock)

    demo = sub.add_parser("demo", help="see failover happen: mock providers, sidecar, traffic, an outage")
    demo.add_argument("--duration", type=float, default=None, help="seconds per phase (default 5)")
    demo.add_argument("--no-live", action="store_true", help="plain log lines instead of a live view")
    demo.set_defaults(run=_run_demo)

    top = sub.add_parser("top", help="live view of sidecars: rates, errors, failovers, p95, circuits")
    top.add_argument("--admin", action="append", default=[], help="sidecar admin URL (repeatable; default :4001)")
    top.add_argument("-n", "--namespace", default=None, help="every injected pod of this namespace, via the API server")
    top.add_argument("--kubeconfig", default=None, help="kubeconfig for -n (default: $KUBECONFIG or ~/.kube/config)")
    top.add_argument("--interval", type=float, default=2.0, help="seconds between refreshes (default 2)")
    top.add_argument("--once", action="store_true", help="print one plain table and exit (for scripts)")
    top.set_defaults(run=_run_top)

    canary = sub.add_parser("canary", help="see or steer a ModelClass's canary rollout (needs the `operator` extra)")
    canary.add_argument("action", choices=["status", "promote", "abort", "retry", "pause", "resume"])
    canary.add_argument("name", help="the ModelClass")
    canary.add_argument("-n", "--namespace", default=None, help="default: the kubeconfig context's namespace")
    canary.add_argument("--kubeconfig", default=None, help="default: $KUBECONFIG or ~/.kube/config")
    canary.add_argument("--full", action="store_true", help="with promote: go to 100%% now instead of one step")
    canary.set_defaults(run=_run_canary)

    _add_import(sub)

    operator = sub.add_parser("operator", help="run the Kubernetes operator (kopf)")
    operator.add_argument("--namespace", action="append", default=[], help="watch only these namespaces")
    operator.add_argument("--standalone", action="store_true", help="no kopf peering: this replica always reconciles")
    operator.add_argument("--peering", default="pilotfish", help="kopf peering object (default: pilotfish)")
    operator.add_argument(
        "--peering-priority",
        type=int,
        default=None,
        help="kopf peering priority; the highest live replica reconciles (default: random, unique per replica)",
    )
    operator.add_argument("--webhook-listen", default="0.0.0.0:9443", help="admission webhook address (HTTPS)")
    operator.add_argument("--webhook-cert", default=None, help="PEM certificate; the webhook runs only with one")
    operator.add_argument("--webhook-key", default=None, help="PEM private key of --webhook-cert")
    operator.add_argument(
        "--webhook-ca", default=None, help="CA of --webhook-cert, for injected sidecars (default: ca.crt beside it)"
    )
    operator.add_argument("--metrics-listen", default="0.0.0.0:8080", help="/healthz, /readyz and /metrics address")
    operator.add_argument("--injector-config", default=None, help="YAML: the injected sidecar's image and resources")
    operator.add_argument("--sweep-interval", type=float, default=60.0, help="seconds between missed-injection sweeps")
    operator.add_argument(
        "--canary-tick", type=float, default=10.0, help="seconds between passes while a canary rolls out"
    )
    operator.add_argument(
        "--secret-reader-role",
        default=None,
        help="ClusterRole to bind ourselves to, per namespace, where credentials reference Secrets (the chart's)",
    )
    operator.add_argument(
        "--service-account", default=None, help="NAMESPACE/NAME of our ServiceAccount (with --secret-reader-role)"
    )
    operator.add_argument(
        "--shutdown-delay",
        type=float,
        default=15.0,
        help="seconds the webhook keeps answering after SIGTERM, so a rollout drops no admission (default 15)",
    )
    operator.set_defaults(run=_run_operator)
    return parser


def _add_import(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    formats = sub.add_parser("import", help="convert another gateway's configuration into manifests")
    litellm = formats.add_subparsers(metavar="FORMAT").add_parser("litellm", help="a LiteLLM proxy config.yaml")
    litellm.add_argument("config", help="the LiteLLM proxy config file")
    litellm.add_argument("-o", "--output", default=None, help="write the manifests here (default: stdout)")
    litellm.add_argument("-n", "--namespace", default=None, help="metadata.namespace of every object (default: none)")
    litellm.add_argument("--secret-name", default="litellm-keys", help="the Secret holding the API keys")
    litellm.add_argument(
        "--secrets-from-env",
        action="store_true",
        help="fill the Secret with the values of the environment variables the config names (writes keys out!)",
    )
    litellm.set_defaults(run=_run_import_litellm)


def _add_serving_flags(parser: argparse.ArgumentParser, *, admin: str) -> None:
    parser.add_argument("--listen", default=DEFAULT_LISTEN, help=f"API address (default {DEFAULT_LISTEN})")
    parser.add_argument("--admin", default=admin, help=f"admin address (default {admin})")
    parser.add_argument("--max-body-bytes", type=int, default=10 * 1024 * 1024, help="request body limit")
    parser.add_argument(
        "--write-deadline-seconds",
        type=float,
        default=DEFAULT_WRITE_SECONDS,
        help=f"a streaming client must take each write within this (default {DEFAULT_WRITE_SECONDS:g})",
    )
    parser.add_argument("--reload-interval", type=float, default=1.0, help="seconds between change checks")
    parser.add_argument("--no-request-log", action="store_true", help="do not log one JSON line per request")
    parser.add_argument(
        "--pod-labels-file", default=None, help="the calling pod's labels (downward API file), for tier rules"
    )


def _run_render(args: argparse.Namespace) -> int:
    from pilotfish.modes import local

    return local.print_render(paths=args.filename, namespace=args.namespace)


def _run_crds(args: argparse.Namespace) -> int:
    from pilotfish.api import crds

    return crds.main_write(outs=args.out or list(crds.DEFAULT_OUTS), check=args.check)


def _run_local(args: argparse.Namespace) -> int:
    from pilotfish.modes import local

    return local.main(paths=args.filename, namespace=args.namespace, options=args)


def _run_sidecar(args: argparse.Namespace) -> int:
    from pilotfish.modes import sidecar

    return sidecar.main(config_dir=args.config_dir, secrets_dir=args.secrets_dir, options=args)


def _run_mock(args: argparse.Namespace) -> int:
    from pilotfish.mocks import runner

    return runner.main(
        provider=args.provider, listen=args.listen, name=args.name, api_key=args.api_key, fault=args.fault
    )


def _run_demo(args: argparse.Namespace) -> int:
    from pilotfish import demo

    return demo.main(phase_seconds=args.duration, live=not args.no_live)


def _run_top(args: argparse.Namespace) -> int:
    from pilotfish.top import run, sources

    source: run.Source
    if args.namespace is not None:
        try:
            from pilotfish_operator import top_proxy  # the kubernetes client comes with the operator extra
        except ImportError as exc:
            sys.stderr.write(f"pilotfish top -n needs the operator extra (pip install 'pilotfish[operator]'): {exc}\n")
            return 2
        source = top_proxy.PodProxy(namespace=args.namespace, kubeconfig=args.kubeconfig)
    else:
        source = sources.Direct(args.admin or ["http://127.0.0.1:4001"])
    return run.main(source, interval=args.interval, once=args.once)


def _run_canary(args: argparse.Namespace) -> int:
    try:
        from pilotfish_operator.canary import commands  # the kubernetes client comes with the operator extra
    except ImportError as exc:
        sys.stderr.write(f"pilotfish canary needs the operator extra (pip install 'pilotfish[operator]'): {exc}\n")
        return 2
    return commands.main(
        action=args.action, name=args.name, namespace=args.namespace, kubeconfig=args.kubeconfig, full=args.full
    )


def _run_import_litellm(args: argparse.Namespace) -> int:
    from pilotfish.importers import litellm

    try:
        with open(args.config, "rb") as file:
            raw = file.read(litellm.MAX_CONFIG_BYTES + 1)  # bounded: parse_config rejects anything longer
        conversion = litellm.convert(
            litellm.parse_config(raw.decode("utf-8")),
            namespace=args.namespace,
            secret_name=args.secret_name,
            environ=os.environ,
            secret_values=os.environ if args.secrets_from_env else None,
        )
    except (OSError, UnicodeDecodeError, litellm.LiteLLMConfigError) as exc:
        sys.stderr.write(f"error: {args.config}: {exc}\n")
        return 1
    for warning in conversion.warnings:
        sys.stderr.write(f"warning: {warning}\n")
    text = litellm.dump(conversion, source=args.config)
    if args.output is None:
        sys.stdout.write(text)
    else:
        output = pathlib.Path(args.output)
        output.touch(mode=0o600)  # it may hold keys (--secrets-from-env): readable by its owner only
        output.write_text(text, encoding="utf-8")
    sys.stderr.write(f"{len(conversion.warnings)} setting(s) not carried over exactly; see the warnings above\n")
    return 0


def _run_operator(args: argparse.Namespace) -> int:
    try:
        import pilotfish_operator.main as operator_main  # the one lazy import of the operator package
    except ImportError as exc:
        sys.stderr.write(f"pilotfish operator needs the operator extra (pip install 'pilotfish[operator]'): {exc}\n")
        return 2
    return operator_main.main(
        operator_main.Options(
            namespaces=tuple(args.namespace),
            standalone=args.standalone,
            peering=args.peering,
            peering_priority=args.peering_priority,
            webhook_listen=args.webhook_listen,
            webhook_cert=args.webhook_cert,
            webhook_key=args.webhook_key,
            webhook_ca=args.webhook_ca,
            metrics_listen=args.metrics_listen,
            injector_config=args.injector_config,
            sweep_interval=args.sweep_interval,
            canary_tick=args.canary_tick,
            secret_reader_role=args.secret_reader_role,
            service_account=args.service_account,
            shutdown_delay=args.shutdown_delay,
        )
    )


if __name__ == "__main__":
    sys.exit(main())
