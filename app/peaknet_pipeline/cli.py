"""`peaknet-pipeline` command line: one subcommand per stage plus run, status, stop, cleanup, config."""

from __future__ import annotations

import argparse
import json
import logging
import sys

from . import logs
from .config import PipelineConfig
from .config_sources import ConfigError, config_to_yaml, load_config

log = logging.getLogger("peaknet_pipeline")

STAGE_COMMANDS = {
    "run": ("produce", "infer", "write"),
    "produce": ("produce",),
    "infer": ("infer",),
    "write": ("write",),
}


def add_config_args(p: argparse.ArgumentParser, config_required: bool = False) -> None:
    """--config, --set and the shortcut flags; config_from_args turns them into a PipelineConfig."""
    p.add_argument("--config", required=config_required, help="pipeline YAML file")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override one config value (repeatable); values are YAML, e.g. 'data.frame_shape=[1,512,512]'",
    )
    g = p.add_argument_group("shortcuts kept from the predecessor's CLI")
    g.add_argument("--max-actors", type=int, help="inference.num_actors")
    g.add_argument("--total-samples", type=int, help="producer.total_frames")
    g.add_argument("--batch-size", type=int, help="data.batch_size")
    g.add_argument("--compile-mode", help="inference.compile_mode")
    g.add_argument("--enable-profiling", action="store_true", default=None, help="profiling.enabled")
    g.add_argument("--verbose", action="store_true", help="output.log_level=DEBUG")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="peaknet-pipeline", description="Real-time Bragg-peak finding on Ray.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_text in [
        ("run", "all stages in one driver (embedded local Ray unless ray.address is set)"),
        ("produce", "producer stage only, against a running cluster"),
        ("infer", "inference stage only, against a running cluster"),
        ("write", "Q2 consumer stage only, against a running cluster"),
    ]:
        p = sub.add_parser(name, help=help_text)
        add_config_args(p)
        p.add_argument("--report", help="write the run summary JSON to this file")
    for name, help_text in [
        ("status", "queue depths and stage states of a running pipeline"),
        ("stop", "ask a running pipeline to drain and finish"),
        ("cleanup", "remove the detached actors (queues, coordinator) of a namespace"),
    ]:
        add_config_args(sub.add_parser(name, help=help_text))
    add_config_args(sub.add_parser("plan", help="actors, CPUs and GPUs the config asks for, against the cluster"))
    push_p = sub.add_parser("push", help="send lclstreamer-format messages with planted peaks (tests, demos, load)")
    add_config_args(push_p)
    push_p.add_argument("--url", required=True, help="e.g. tcp://127.0.0.1:5555")
    push_p.add_argument("--transport", choices=["zmq", "nng"], default="zmq")
    push_p.add_argument("--role", choices=["dial", "listen"], default="dial", help="lclstreamer dials (connects)")
    push_p.add_argument("--flavour", choices=["hdf5", "npz"], default="hdf5")
    push_p.add_argument("--compress", action="store_true", help="gzip (HDF5) or savez_compressed (NPZ)")
    push_p.add_argument("--batches", type=int, default=10, help="messages to send, each data.batch_size frames")
    push_p.add_argument("--rate", type=float, default=0.0, help="messages per second (0: as fast as taken)")
    cx_p = sub.add_parser("crystfel", help="what CrystFEL needs to read the CXI files")
    cx_sub = cx_p.add_subparsers(dest="crystfel_command", required=True)
    add_config_args(cx_sub.add_parser("geom", help="print a complete .geom for the config's single-panel frames"))
    ev_p = cx_sub.add_parser("events", help="print the event list indexamajig -i needs for peaks-only CXI files")
    ev_p.add_argument("files", nargs="+", help="CXI files written by the pipeline")
    cx_sub.add_parser(
        "plugin-path", help="print the HDF5_PLUGIN_PATH CrystFEL needs for compressed images (writer.compression)"
    )
    cfg_p = sub.add_parser("config", help="configuration tools")
    cfg_sub = cfg_p.add_subparsers(dest="config_command", required=True)
    add_config_args(cfg_sub.add_parser("show", help="print the effective configuration as YAML"))
    return parser


def config_from_args(args: argparse.Namespace) -> PipelineConfig:
    shortcuts = {
        "inference.num_actors": args.max_actors,
        "producer.total_frames": args.total_samples,
        "data.batch_size": args.batch_size,
        "inference.compile_mode": args.compile_mode,
        "profiling.enabled": args.enable_profiling,
        "output.log_level": "DEBUG" if args.verbose else None,
        "output.report": getattr(args, "report", None),
    }
    return load_config(args.config, args.overrides, shortcuts)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "crystfel" and args.crystfel_command == "events":
        from .output.crystfel import event_list

        for line in event_list(args.files):
            print(line)
        return 0
    if args.command == "crystfel" and args.crystfel_command == "plugin-path":
        import hdf5plugin

        print(hdf5plugin.PLUGIN_PATH)
        return 0
    try:
        cfg = config_from_args(args)
    except ConfigError as exc:
        print(f"peaknet-pipeline: {exc}", file=sys.stderr)
        return 2
    logs.configure(cfg.output.log_level)
    if args.command == "config":
        sys.stdout.write(config_to_yaml(cfg))
        return 0
    if args.command == "crystfel":
        return print_geometry(cfg)
    if args.command == "plan":
        return print_plan(cfg)
    if args.command == "push":
        from .ingest.push import PushPlan, push

        plan = PushPlan(args.url, args.transport, args.role, args.flavour, args.compress, args.batches, args.rate)
        push(cfg, plan)
        return 0
    from . import commands  # imports ray and torch: keep `config show` and --help fast

    try:
        if args.command in STAGE_COMMANDS:
            return commands.run_stages(cfg, STAGE_COMMANDS[args.command], args.command)
        return getattr(commands, args.command)(cfg)
    except ConfigError as exc:  # a setting only the run can check (files, addresses)
        print(f"peaknet-pipeline {args.command}: {exc}", file=sys.stderr)
        return 2
    except (LookupError, RuntimeError, ValueError) as exc:
        print(f"peaknet-pipeline {args.command}: {exc}", file=sys.stderr)
        return 1


def print_plan(cfg: PipelineConfig) -> int:
    """0 when the config's actors fit the cluster (or there is none to ask), 1 when some fit on no node."""
    import os

    from .plan import against, asks, render, store_line, store_need

    stages = STAGE_COMMANDS["run"]
    store = store_line(store_need(cfg), cfg.ray.object_store_memory_mb)
    if not (cfg.ray.address or os.environ.get("RAY_ADDRESS")):
        print(render(asks(cfg, stages), store=store))
        return 0
    from .ray_session import connect
    from .scheduling import check_store, node_resources

    connect(cfg, embedded=False)
    nodes = node_resources()
    plan, problems = against(cfg, stages, nodes)
    short = check_store(cfg, nodes)
    print(render(plan, nodes, problems, store + (f"\nwarning: {short}" if short else "")))
    return 1 if problems else 0


def print_geometry(cfg: PipelineConfig) -> int:
    from .output.crystfel import single_panel_geometry

    shape = cfg.data.frame_shape
    if shape is None or shape[0] != 1:
        where = "writer.geometry" if shape is not None else "data.frame_shape"
        print(f"peaknet-pipeline crystfel geom: frames {shape} are not single-panel; use {where}'s .geom, with "
              "the keys `crystfel geom` prints for one panel (examples/geometry/)", file=sys.stderr)  # fmt: skip
        return 2
    sys.stdout.write(single_panel_geometry(shape[1], shape[2]))
    return 0


def print_json(obj: object) -> None:
    print(json.dumps(obj, indent=2, default=str))


if __name__ == "__main__":
    sys.exit(main())
