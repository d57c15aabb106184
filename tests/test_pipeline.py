"""Whole pipeline in one driver on a real local Ray, CPU path."""

import numpy as np

from peaknet_pipeline.driver import StageDriver
from peaknet_pipeline.records import FrameBatch, FrameMeta
from peaknet_pipeline.stages.launch import start_producers
from peaknet_pipeline.stages.wiring import ensure_shared_actors, q1_client, shared_actor_names

ALL = ("produce", "infer", "write")


def test_cpu_pipeline_accounts_for_every_frame(ray_session, cpu_config):
    ray = ray_session
    report = StageDriver(cpu_config, ALL, "run", whole_pipeline=True).execute()
    stages = report.stages
    assert stages["produce"].frames_out == 64
    assert stages["infer"].frames_in == stages["infer"].frames_out == 64
    assert stages["write"].frames_in == 64
    sink_info = next(iter(stages["write"].info.values()))
    assert sink_info["unique_frames"] == 64 and sink_info["duplicate_frames"] == 0
    assert report.accounted is True and report.stopped_by is None
    assert report.peak_quality["frames"] == 8  # writer.kind none samples: batches 0 and 8 of 16
    infer_info = next(iter(stages["infer"].info.values()))
    assert infer_info["warmup_shape"] == [1, 64, 64]  # pre-warm-up on the configured shape
    assert infer_info["fused_blocks"] == infer_info["fp8_blocks"] == 0  # which kernels ran: on CPU, PyTorch ops
    assert all(q.depth_at_end == 0 and 1 <= q.high_water <= 4 for q in report.queues)
    # run removes the detached actors it created
    for name in shared_actor_names(cpu_config):
        try:
            ray.get_actor(name, namespace=cpu_config.ray.namespace)
            raise AssertionError(f"{name} still alive")
        except ValueError:
            pass


def test_wrong_shape_and_dtype_batches_are_rejected_and_the_run_goes_on(ray_session, cpu_config):
    ray = ray_session
    ensure_shared_actors(cpu_config)
    q1 = q1_client(cpu_config)
    bad = {"shape": np.zeros((3, 1, 64, 32), np.float32), "dtype": np.zeros((2, 1, 64, 64), np.float64)}
    for reason, frames in bad.items():
        meta = [FrameMeta(f"bad-{reason}:{i}", 0.0, 9000.0) for i in range(len(frames))]
        q1.put(FrameBatch(f"bad-{reason}", ("test-injector",), ray.put(frames), meta))
    report = StageDriver(cpu_config, ALL, "run", whole_pipeline=True).execute()
    infer = report.stages["infer"]
    assert infer.failed == {"shape": 3, "dtype": 2}
    assert infer.frames_out == 64 and report.stages["write"].frames_in == 64
    assert infer.frames_in == 64 + 5


def test_post_warm_up_on_a_shape_the_config_did_not_name(ray_session, cpu_config):
    producer_cfg = cpu_config.model_copy(deep=True)
    producer_cfg.data.frame_shape = (2, 48, 40)
    producer_cfg.producer.total_frames = 12
    producer_cfg.producer.num_producers = 1
    infer_cfg = cpu_config.model_copy(deep=True)
    infer_cfg.data.frame_shape = None  # the inference stage learns the shape from the first batch
    coordinator = ensure_shared_actors(producer_cfg)
    producers = start_producers(producer_cfg, coordinator, "pw")
    running = [m.handle.run.remote() for m in producers]
    report = StageDriver(infer_cfg, ("infer", "write"), "infer+write").execute()
    ray_session.get(running)
    info = next(iter(report.stages["infer"].info.values()))
    assert info["warmup_shape"] == [2, 48, 40]
    assert report.stages["infer"].frames_out == 12 and report.stages["write"].frames_in == 12


def test_max_run_s_stops_a_continuous_run_and_every_frame_is_accounted(ray_session, cpu_config):
    cfg = cpu_config.model_copy(deep=True)
    cfg.producer.total_frames = None  # would run for ever
    cfg.producer.push_interval_s = 0.05
    cfg.lifecycle.max_run_s = 8.0  # long enough for the first batches on a loaded machine
    report = StageDriver(cfg, ALL, "run", whole_pipeline=True).execute()
    assert report.stopped_by == "max_run_s"
    assert report.accounted is True
    produced = report.stages["produce"].frames_out
    assert produced > 0 and report.stages["write"].frames_in == produced
    # How much of its active time inference waited for input (how much depends on the machine's load here;
    # the bench's use of it is tested in test_observability).
    (info,) = report.stages["infer"].info.values()
    assert 0.0 <= info["input_wait_fraction"] <= 1.0


def test_stages_that_cannot_be_placed_are_named(ray_session, cpu_config):
    import time

    from peaknet_pipeline.scheduling import UnplacedWatch, check_cpus
    from peaknet_pipeline.stages.launch import Member

    cfg = cpu_config.model_copy(deep=True)
    assert check_cpus(cfg, ALL) is None
    cfg.writer.num_cpus = 64  # more than the test cluster has
    assert "writer.num_cpus" in check_cpus(cfg, ALL)

    @ray_session.remote(num_cpus=64)
    class Greedy:
        def ping(self):
            return 1

    placed = Member("write", "placed", None)
    stuck = Member("write", "stuck", Greedy.remote())
    watch = UnplacedWatch([placed, stuck], grace_s=0.2)
    assert watch.check(set()) == [] and not watch.pending()  # not yet due
    time.sleep(0.3)
    assert watch.pending()
    assert watch.check({"placed"}) == ["stuck"]
    assert watch.check(set()) == []  # warns once
    ray_session.kill(stuck.handle)


def test_the_ledger_settles_each_frame_once_and_the_exit_code_follows_it():
    from peaknet_pipeline.ledger import FileIntent, Ledger
    from peaknet_pipeline.report import EXIT_FRAMES_LOST, EXIT_OK, EXIT_STAGE_FAILED, build_report

    ledger = Ledger()
    ledger.produced("p0", 10)
    ledger.settle({"p0": 2, "i0": 2}, 2, "filtered_min_num_peak")
    ledger.settle({"p0": 6, "i0": 6}, 6, None)  # released (images copied), outcome still to come
    ledger.intend(FileIntent("w0", "/x/a.cxi", 6))
    assert ledger.settled_by("p0") == 8 and ledger.summary()["outcomes"] == {"filtered_min_num_peak": 2}
    ledger.commit("w0", "/x/a.cxi")
    ledger.commit("w0", "/x/a.cxi")  # a second commit of the same file counts nothing
    assert ledger.summary()["outcomes"] == {"filtered_min_num_peak": 2, "written": 6}
    report = build_report("run", [], [], 1.0, None, ledger.summary())
    assert report.frames.lost == 2 and report.accounted is False and report.exit_code == EXIT_FRAMES_LOST
    ledger.intend(FileIntent("w0", "/x/b.cxi", 2))
    assert build_report("run", [], [], 1.0, None, ledger.summary()).accounted is False  # pending file
    ledger.drop("w0", "/x/b.cxi", "write_failed")
    report = build_report("run", [], [], 1.0, None, ledger.summary())
    assert report.frames.lost == 2 and report.frames.outcomes["write_failed"] == 2
    ledger.settle({}, 2, "write_failed")
    clean = Ledger()
    clean.produced("p0", 4)
    clean.settle({"p0": 4}, 4, "delivered")
    report = build_report("run", [], [], 1.0, None, clean.summary())
    assert report.accounted is True and report.exit_code == EXIT_OK
    report.error = "write write-0: cannot write"
    assert report.exit_code == EXIT_STAGE_FAILED
