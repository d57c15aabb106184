"""The one configuration model: CLI, YAML, Helm values and RayJob args all end up here."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, field_validator, model_validator

from .kinds import MODELS, PRODUCERS, WRITERS

ProducerName = Literal[tuple(PRODUCERS)]
ModelName = Literal[tuple(MODELS)]
WriterName = Literal[tuple(WRITERS)]


class Section(BaseModel):
    # Unknown keys are errors: a typo must never silently fall back to a default.
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class RaySection(Section):
    address: str | None = Field(None, description="Ray cluster address; null starts an embedded local Ray")
    namespace: str = Field("peaknet", description="Ray namespace where stages meet")
    num_cpus: PositiveInt | None = Field(None, description="logical CPUs of the embedded Ray (null: enough)")
    object_store_memory_mb: PositiveInt | None = None
    prefault_store: bool = Field(
        False,
        description="each stage that puts batches (producers, inference actors) maps the node's whole object store "
        "into its page tables as it starts, before its first batch (madvise MADV_POPULATE_WRITE, Linux 5.14+), so its "
        "puts do not fault on pages new to it; the store becomes resident at once. false: as puts first touch them",
    )


class DataSection(Section):
    frame_shape: tuple[PositiveInt, PositiveInt, PositiveInt] | None = Field(
        None,
        description="(C, H, W) of every frame. Set: compile and warm up before the first frame. "
        "Null: warm up on the first batch's shape",
    )
    batch_size: PositiveInt = Field(64, description="frames per batch; smaller batches are padded")
    dtype: Literal["float32", "float16", "uint16", "int16", "int32", "float64"] = Field(
        "float32", description="dtype of frames in Q1; producers convert once per batch"
    )


class SyntheticPeaks(Section):
    per_frame: tuple[int, int] = Field((10, 30), description="min and max planted peaks per frame")
    sigma_px: float = Field(1.2, gt=0, description="Gaussian width of a peak in pixels")
    amplitude: float = Field(60.0, gt=0, description="peak height over background")
    min_separation_px: float = Field(6.0, ge=0)


class SocketAddress(Section):
    url: str = Field(description="e.g. tcp://0.0.0.0:5555")
    role: Literal["listen", "dial"] = Field("listen", description="listen/bind, or dial/connect to the sender")


class DatasetNames(Section):
    """Where lclstreamer puts each data source: HDF5 paths and NPZ keys (its defaults)."""

    hdf5_detector: str = "/data/data"
    hdf5_timestamp: str = "/data/timestamp"
    hdf5_wavelength: str = "/data/wavelength"
    npz_detector: str = "detector_data"
    npz_timestamp: str = "timestamp"
    npz_wavelength: str = "photon_wavelength"
    npz_original_shape: str = "detector_data_original_shape"


class SocketSection(Section):
    transport: Literal["zmq", "nng"] = Field("zmq", description="zmq: current lclstreamer; nng: older releases")
    addresses: list[SocketAddress] = Field(default_factory=list, description="one producer actor per address")
    buffer_batches: PositiveInt = Field(16, description="messages drained from the socket ahead of Q1")
    idle_timeout_s: float | None = Field(None, gt=0, description="end the stream after this long without data")
    max_messages: PositiveInt | None = Field(None, description="end the stream after this many messages")
    names: DatasetNames = DatasetNames()


class FileSection(Section):
    paths: list[str] = Field(
        default_factory=list,
        description="HDF5/CXI files or glob patterns (each glob sorted), replayed in this order; the driver and "
        "the producers must see them at the same paths",
    )
    dataset: str = Field("/entry_1/data_1/data", description="the frames: (B, H, W) or (B, C, H, W)")
    event_ids: str | None = Field(
        "/entry_1/event_id", description="per-frame ids kept where a file has them; otherwise <file>:<index>"
    )
    loops: PositiveInt = Field(1, description="replay every file this many times (load tests)")
    frames_per_s: float | None = Field(
        None, gt=0, description="pace each producer to this rate; null: as fast as Q1 takes them"
    )


class ProducerSection(Section):
    kind: ProducerName = Field("synthetic", description="synthetic frames, a socket (lclstreamer), or files")
    socket: SocketSection = SocketSection()
    file: FileSection = FileSection()
    num_producers: PositiveInt = Field(
        1, description="parallel streams (producer actors); socket: one per address; file: at most one per file"
    )
    total_frames: PositiveInt | None = Field(1024, description="frames over all producers; null: produce until stopped")
    push_interval_s: float = Field(0.0, ge=0, description="pause between pushed batches")
    seed: int = 0
    background: float = 10.0
    noise_sigma: float = Field(2.0, ge=0)
    photon_energy_eV: float = Field(9500.0, gt=0)
    peaks: SyntheticPeaks = SyntheticPeaks()
    unique_batches: PositiveInt | None = Field(
        None, description="make this many batches once and cycle them (fast load generation); null: all new"
    )
    num_cpus: float = Field(0.5, ge=0, description="Ray CPUs reserved per producer actor")
    resources: dict[str, float] = Field(
        default_factory=dict,
        description="custom Ray resources each producer actor needs, e.g. {ingest: 1} to pin socket receivers "
        "to the worker group that the ingest Service routes to (rayStartParams resources on that group)",
    )
    linger_timeout_s: float = Field(
        120.0, ge=0, description="how long a finished producer keeps its frames alive for downstream"
    )


class QueueSection(Section):
    num_shards: PositiveInt = Field(2, description="shard actors per queue")
    maxsize: PositiveInt = Field(16, description="records (batches) per shard before producers block")
    q1_name: str = "peaknet-q1"
    q2_name: str = "peaknet-q2"
    poll_timeout_s: float = Field(0.2, gt=0, description="blocking get/put wait before rechecking state")


class ThresholdModel(Section):
    k_sigma: float = Field(6.0, gt=0, description="peak pixels: value > mean + k_sigma * std of the frame")


class PeakNetModel(Section):
    """Sizes left null come from the preset; set one to override it."""

    preset: Literal["base", "673m", "demo"] | None = Field("base", description="demo: small, for CPUs")
    weights: str | None = Field(
        None,
        description="PeakNet state_dict (torch.save): a path, or builtin:NAME for weights shipped with the package "
        "(builtin:peaknet-demo-synthetic.pt, preset demo); null runs random weights, on purpose",
    )
    backbone_hidden_sizes: tuple[PositiveInt, PositiveInt, PositiveInt, PositiveInt] | None = None
    backbone_depths: tuple[PositiveInt, PositiveInt, PositiveInt, PositiveInt] | None = None
    bifpn_num_blocks: PositiveInt | None = None
    bifpn_num_features: PositiveInt | None = None
    seg_out_channels: PositiveInt | None = None
    uses_learned_upsample: bool | None = None
    channels_last: bool = Field(True, description="NHWC activations on GPU (faster convolutions)")
    cast_weights: bool = Field(True, description="on GPU with bf16/fp16, cast weights once instead of autocast")
    fused_kernels: Literal["none", "dwconv", "gemm", "blocks", "all"] | None = Field(
        None,
        description="on GPU, ConvNeXt blocks as fused Triton kernels (same weights): gemm = both linear layers with "
        "GELU, GRN and the residual in their epilogues; dwconv = the depthwise 7x7 only (the linear layers by "
        "cuBLAS, or in FP8 with precision fp8); blocks = gemm and dwconv; all = blocks, and each BiFPN step (fusion, "
        "1x1 conv, LayerNorm, GELU, residual) as one kernel; none = PyTorch ops; "
        "null = what measured fastest for the preset (base: all; 673m: dwconv; custom sizes: none)",
    )
    mlp_gelu: Literal["exact", "tanh"] | None = Field(
        None,
        description="the GELU between the ConvNeXt blocks' two linear layers (same weights): exact (erf), or its "
        "tanh form (PyTorch's approximate='tanh'), which fused_kernels gemm and all run in cuBLASLt's GEMM epilogue; "
        "null = per preset, as the accuracy benchmark and the model benchmarks measured (base: tanh; others: exact)",
    )


class Preprocess(Section):
    instance_norm: bool = Field(False, description="(x - mean) / sqrt(var + 1e-6) per frame and panel")
    pad: Literal["none", "bottom_right", "center"] = Field(
        "none", description="pad H and W to multiples of 32; masks are cropped back"
    )


class ModelSection(Section):
    kind: ModelName = Field("peaknet", description="peaknet, or the classical threshold model")
    num_channels: PositiveInt = Field(1, description="model input channels; detector panels are fed one by one")
    num_classes: PositiveInt = 2
    peaknet: PeakNetModel = PeakNetModel()
    threshold: ThresholdModel = ThresholdModel()
    preprocess: Preprocess = Preprocess()


class InferenceSection(Section):
    num_actors: PositiveInt = Field(1, description="inference actors (one GPU each on a GPU machine)")
    device: Literal["auto", "cuda", "cpu"] = "auto"
    precision: Literal["fp32", "bf16", "fp16", "fp8"] = Field(
        "bf16",
        description="autocast dtype on GPU; fp8: bf16 with the wide ConvNeXt blocks' GEMMs in FP8 (compute capability "
        ">= 9.0, Hopper); CPU runs fp32",
    )
    compile_mode: Literal["none", "default", "reduce-overhead", "max-autotune"] = "none"
    tune_kernels: bool = Field(
        False,
        description="compiled: inductor tunes its generated kernels' launch settings (coordinate descent); "
        "~2 min more compile, cached with inductor's cache (TORCHINDUCTOR_CACHE_DIR)",
    )
    num_buffers: int = Field(2, ge=1, le=8, description="batches in flight per actor (N-way buffering)")
    gpu_wait: Literal["spin", "sleep"] = Field(
        "sleep",
        description="how the actor waits for a batch's masks: sleep (blocking sync: the core free for the node's "
        "other stages, woken by the driver) or spin (CUDA's default: a core polls through every batch)",
    )
    warmup_iters: int = Field(3, ge=0)
    num_cpus: float = Field(1.0, ge=0, description="Ray CPUs reserved per inference actor")
    cpu_threads: PositiveInt | None = Field(None, description="torch threads on the CPU path (null: num_cpus)")


class PeaksSection(Section):
    weighting: Literal["intensity", "mask"] = Field(
        "intensity", description="centre of mass weighted by pixel values, or by the mask alone"
    )
    max_pending_tasks: PositiveInt = Field(8, description="peak-finding tasks in flight per writer")
    task_cpus: float = Field(1.0, gt=0, description="Ray CPUs per peak-finding task")


class WriterSection(Section):
    kind: WriterName = Field("cxi", description="cxi: peaks and CXI files; none: count and check only")
    num_actors: PositiveInt = Field(1, description="writer actors (Q2 consumers), each with its own files")
    num_cpus: float = Field(0.5, ge=0)
    output_dir: str = "cxi"
    file_prefix: str = "peaknet"
    buffer_size: PositiveInt = Field(500, description="kept events per CXI file")
    flush_interval_s: float = Field(
        10.0, gt=0, description="write a file with fewer events when the oldest has waited this long (slow input)"
    )
    min_num_peak: int = Field(10, ge=0, description="events with fewer peaks are counted, not written")
    max_num_peak: PositiveInt = Field(2048, description="peaks stored per event at most")
    store_images: bool = Field(True, description="false: peaks only, for high rates")
    compression: Literal["none", "bitshuffle-lz4", "zstd"] = Field(
        "none",
        description="images' HDF5 filter (hdf5plugin); CrystFEL and h5dump need HDF5_PLUGIN_PATH set to "
        "hdf5plugin's plugin directory",
    )
    geometry: str | None = Field(None, description="CrystFEL .geom file; needed for multi-panel frames")


class LifecycleSection(Section):
    service: bool | None = Field(
        None, description="stages wait for more input until `stop` (null: yes for stage subcommands, no for run)"
    )
    drain_timeout_s: float = Field(60.0, gt=0, description="after a stop, how long stages may drain")
    max_run_s: float | None = Field(None, gt=0, description="`run`: stop the pipeline (and drain) after this long")
    start_timeout_s: float = Field(
        60.0, gt=0, description="warn about stage actors not running after this long (waiting for resources)"
    )
    max_restarts: int = Field(
        3, ge=0, description="times Ray restarts a dead inference or writer actor (frames it held are counted lost)"
    )
    heartbeat_timeout_s: float = Field(
        30.0, gt=0, description="a member silent this long counts as dead; also when a killed driver's claim is stale"
    )
    stall_timeout_s: float | None = Field(
        120.0, gt=0, description="end a run in which no frame moved for this long, naming the stalled stage (null: off)"
    )


class ProfilingSection(Section):
    enabled: bool = Field(False, description="NVTX ranges per stage and batch step, and a trace of inference")
    tool: Literal["auto", "nsys", "torch"] = Field(
        "auto", description="auto: Nsight Systems (Ray's nsight runtime_env) when nsys is on PATH, else torch profiler"
    )
    torch_trace_dir: str = Field("peaknet-traces", description="where torch profiler traces (Chrome JSON) go")
    trace_skip_batches: int = Field(20, ge=0, description="batches after warm-up before the torch trace starts")
    trace_batches: PositiveInt = Field(40, description="batches recorded in the torch trace (keeps the file small)")


class OutputSection(Section):
    progress: Literal["auto", "live", "log", "off"] = "auto"
    progress_interval_s: float = Field(30.0, gt=0, description="seconds between plain progress log lines")
    report: str | None = Field(None, description="write the run summary JSON here")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    samples: str | None = Field(None, description="write resource samples (RSS, queue depths, object store) here")
    samples_interval_s: float = Field(5.0, gt=0, description="seconds between resource samples")

    @field_validator("progress", mode="before")
    @classmethod
    def _off_as_yaml_reads_it(cls, value):
        """YAML 1.1 reads an unquoted `off` (in a file or a --set) as false."""
        return "off" if value is False else value


class PipelineConfig(Section):
    ray: RaySection = RaySection()
    data: DataSection = DataSection()
    producer: ProducerSection = ProducerSection()
    queues: QueueSection = QueueSection()
    model: ModelSection = ModelSection()
    inference: InferenceSection = InferenceSection()
    peaks: PeaksSection = PeaksSection()
    writer: WriterSection = WriterSection()
    lifecycle: LifecycleSection = LifecycleSection()
    profiling: ProfilingSection = ProfilingSection()
    output: OutputSection = OutputSection()

    @model_validator(mode="after")
    def _check_cross_section(self) -> PipelineConfig:
        lo, hi = self.producer.peaks.per_frame
        if not 0 <= lo <= hi:
            raise ValueError(f"producer.peaks.per_frame must be (min, max) with 0 <= min <= max, got {(lo, hi)}")
        return self
