"""Compiles the model's Triton kernels for a Hopper GPU (sm_90) with no GPU present and reports what each
cubin uses (cuobjdump --dump-resource-usage). Run as `python -m tests.hopper_compile` with TRITON_INTERPRET unset
(under the interpreter the kernels are not Triton JIT functions); prints {case: {REG, STACK, SHARED, LOCAL}} as
JSON. test_kernels_compile.py reads it."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
import triton
import triton.backends.nvidia
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

from peaknet_pipeline.model import bifpn_kernel as bk
from peaknet_pipeline.model import dwconv_kernel as dk
from peaknet_pipeline.model import head_kernel as hk
from peaknet_pipeline.model import stem_kernel as sk
from peaknet_pipeline.model import triton_kernels as tk

HOPPER = GPUTarget("cuda", 90, 32)  # backend, compute capability, warp size
CUOBJDUMP = Path(triton.backends.nvidia.__file__).parent / "bin" / "cuobjdump"
BASE_STAGES = ((96, 128), (192, 64), (384, 32), (768, 16))  # (channels, pixels per side) of base at 512x512


def launcher_attrs(fn, signature: dict, ints: dict[str, int]) -> dict:
    """The specialisation Triton's launcher gives a call: pointers (torch's allocations are 16-byte aligned) and
    integer arguments that are multiples of 16 carry tt.divisibility 16, which lets the compiler vectorise loads.
    Without it every element gets its own 64-bit address and the GEMM kernels appear to spill."""
    aligned = [name for name, kind in signature.items() if kind.startswith("*") or ints.get(name, 1) % 16 == 0]
    return {(fn.arg_names.index(name),): [["tt.divisibility", 16]] for name in aligned}


def compile_for_hopper(fn, signature: dict, constexprs: dict, ints: dict[str, int], num_warps: int,
                       num_stages: int = 3):  # fmt: skip
    """fn compiled for sm_90 as a launch with these integer arguments' values would compile it."""
    src = ASTSource(fn=fn, signature={**signature, **dict.fromkeys(constexprs, "constexpr")}, constexprs=constexprs,
                    attrs=launcher_attrs(fn, signature, ints))  # fmt: skip
    return triton.compile(src, target=HOPPER, options={"num_warps": num_warps, "num_stages": num_stages})


def resources(kernel) -> dict[str, int]:
    """REG (per thread), STACK and LOCAL (bytes per thread) and SHARED (static, bytes) of the kernel's cubin, how
    many warpgroup MMA instructions (Hopper's tensor-core path) its PTX has, and the shared memory a launch asks
    for (DYNAMIC_SHARED, bytes; the launch fails past the GPU's limit)."""
    with tempfile.TemporaryDirectory() as tmp:
        cubin = Path(tmp) / "kernel.cubin"
        cubin.write_bytes(kernel.asm["cubin"])
        out = subprocess.run([CUOBJDUMP, "--dump-resource-usage", cubin], capture_output=True, text=True, check=True)
    usage = re.search(r"REG:(\d+) STACK:(\d+) SHARED:(\d+) LOCAL:(\d+)", out.stdout)
    if usage is None:
        raise RuntimeError(f"no resource usage in cuobjdump's output: {out.stdout!r}")
    used = dict(zip(("REG", "STACK", "SHARED", "LOCAL"), map(int, usage.groups())))
    return used | {"wgmma": kernel.asm["ptx"].count("wgmma.mma_async"), "DYNAMIC_SHARED": kernel.metadata.shared}


def depthwise(channels: int, side: int) -> dict[str, int]:
    settings = dk.launch_settings(side, side, channels)
    warps = settings.pop("num_warps")
    signature = {**dict.fromkeys(("x_ptr", "w_ptr", "b_ptr", "out_ptr"), "*bf16"), "H": "i32", "W": "i32"}
    constexprs = {"C": channels, **settings}
    return resources(compile_for_hopper(dk._dwconv7_kernel, signature, constexprs, {"H": side, "W": side}, warps))


def gemm(kind: str, channels: int, side: int, tma: bool = False, dtype: str = "bf16", tanh: bool = False) -> dict:
    """pwconv1's kernel (gelu) or pwconv2's (residual) of a base block as the compiled model runs them: by
    per-thread loads, or by TMA (Hopper, `tma`) in bf16 or fp32 (precision fp32); GELU exact or in its tanh form
    (the tanh.approx instruction, which only the GPU compiler sees)."""
    k, n = (channels, 4 * channels) if kind == "gelu" else (4 * channels, channels)
    element_size = 4 if dtype == "fp32" else 2
    settings = tk.launch_settings(kind, k, n, tk.row_block(side * side), tma=tma, element_size=element_size)
    warps, stages = settings.pop("num_warps"), settings.pop("num_stages")
    signature = dict.fromkeys(("part_ptr", "scale_ptr"), "*fp32")
    if tma:
        bm, bn, bk = settings["BLOCK_M"], settings["BLOCK_N"], settings["BLOCK_K"]
        signature |= {"a_desc": f"tensordesc<{dtype}[{bm}, {bk}]>", "w_desc": f"tensordesc<{dtype}[{bn}, {bk}]>"}
        signature |= dict.fromkeys(("res_desc", "out_desc"), f"tensordesc<{dtype}[{bm}, {bn}]>")
        signature |= {"bias_ptr": f"*{dtype}"} | dict.fromkeys(("N", "K", "HW"), "i32")
    else:
        signature |= dict.fromkeys(("a_ptr", "w_ptr", "bias_ptr", "res_ptr", "out_ptr"), f"*{dtype}")
        signature |= dict.fromkeys(("M", "N", "K", "HW"), "i32")
    torch_dtype = torch.float32 if dtype == "fp32" else torch.bfloat16
    flags = tk.kernel_flags(kind == "gelu", kind == "residual", kind == "residual", torch_dtype, tanh)
    if not tma:
        flags["EVEN_K"] = k % settings["BLOCK_K"] == 0
    ints = {"M": 64 * side * side, "N": n, "K": k, "HW": side * side}  # a batch of 64
    fn = tk._tma_linear_kernel if tma else tk._linear_kernel
    return resources(compile_for_hopper(fn, signature, {**flags, **settings}, ints, warps, stages))


BIFPN_SIDES = (128, 64, 32, 16)  # base's BiFPN levels at 512x512, 256 channels each


def bifpn(resample: int, side: int, channels: int = 256, p_bias: bool = False) -> dict[str, int]:
    """One BiFPN step's kernel (bifpn_kernel.py) at a level of base at 512x512, p with its bias or without."""
    settings = bk.launch_settings(side * side, channels)
    warps, stages = settings.pop("num_warps"), settings.pop("num_stages")
    signature = dict.fromkeys(("p_ptr", "pb_ptr", "m_ptr", "r_ptr"), "*bf16") | {"coef_ptr": "*fp32"}
    signature |= dict.fromkeys(("w_ptr", "ln_w_ptr", "ln_b_ptr", "out_ptr"), "*bf16")
    signature |= {"H": "i32", "W": "i32", "eps": "fp64"}  # inductor passes a float to a user kernel as fp64
    constexprs = {"C": channels, "RESAMPLE": resample, "HAS_M": resample == bk.DOWN, "P_BIAS": p_bias, "UPCAST": False}
    constexprs |= settings
    kernel = compile_for_hopper(bk._bifpn_step_kernel, signature, constexprs, {"H": side, "W": side}, warps, stages)
    return resources(kernel)


def stem(channels: int) -> dict[str, int]:
    """The stem's kernel (stem_kernel.py) for 512x512 frames."""
    settings = sk.launch_settings(channels)
    warps = settings.pop("num_warps")
    signature = dict.fromkeys(("x_ptr", "w_ptr", "b_ptr", "ln_w_ptr", "ln_b_ptr", "out_ptr"), "*bf16")
    signature |= {"PIXELS": "i32", "OH": "i32", "OW": "i32", "eps": "fp64"}
    constexprs = {"C": channels, "UPCAST": False, **settings}
    ints = {"PIXELS": 64 * 128 * 128, "OH": 128, "OW": 128}
    return resources(compile_for_hopper(sk._stem_kernel, signature, constexprs, ints, warps))


def head(channels: int = 256, groups: int = 32, classes: int = 2) -> dict[str, dict[str, int]]:
    """The head's kernels (head_kernel.py) at base's laterals for 512x512 frames: the statistics, and the
    projection of the finest lateral (with bias) and of the three coarser ones summed (without)."""
    ints = {"HW": 128 * 128, "LEVEL_STRIDE": 64 * channels}
    partials = {"x_ptr": "*bf16", "b_ptr": "*bf16", "mean_ptr": "*fp32", "m2_ptr": "*fp32", "HW": "i32"}
    project = dict.fromkeys(("x0_ptr", "x1_ptr", "x2_ptr"), "*bf16") | {"scale_ptr": "*fp32", "shift_ptr": "*fp32"}
    project |= {"w_ptr": "*bf16", "b_ptr": "*bf16", "out_ptr": "*fp32", "HW": "i32", "LEVEL_STRIDE": "i32"}
    constexprs = {"C": channels, "BLOCK_P": hk.BLOCK_P}
    cases = {"head-partials": compile_for_hopper(hk._group_partials_kernel, partials, constexprs | {"G": groups},
                                                 ints, num_warps=8)}  # fmt: skip
    for levels in (1, hk.MAX_LEVELS):
        flags = {"K": classes, "LEVELS": levels, "HAS_BIAS": levels == 1}
        kernel = hk._norm_gelu_project_kernel
        cases[f"head-project-{levels}"] = compile_for_hopper(kernel, project, constexprs | flags, ints,
                                                             hk.project_warps(levels))  # fmt: skip
    return {case: resources(kernel) for case, kernel in cases.items()}


def main() -> int:
    cases = {f"dwconv-{c}": depthwise(c, side) for c, side in BASE_STAGES}
    cases |= {f"bifpn-up-{side}": bifpn(bk.UP, side) for side in BIFPN_SIDES[:-1]}
    cases |= {f"bifpn-down-{side}": bifpn(bk.DOWN, side) for side in BIFPN_SIDES[1:]}
    cases |= {"bifpn-up-128-bias": bifpn(bk.UP, 128, p_bias=True)}  # the BiFPN's first steps, fed by the adapters
    cases |= {"bifpn-down-64-bias": bifpn(bk.DOWN, 64, p_bias=True)}
    cases |= {f"stem-{c}": stem(c) for c in (96, 352, 512)}  # base's, 673m's, the most the kernel takes
    cases |= head()
    for kind in ("gelu", "residual"):
        cases |= {f"{kind}-{c}": gemm(kind, c, side) for c, side in BASE_STAGES}
        for dtype in ("bf16", "fp32"):
            cases |= {f"tma-{kind}-{c}-{dtype}": gemm(kind, c, side, tma=True, dtype=dtype) for c, side in BASE_STAGES}
    cases |= {f"tma-gelu-{c}-bf16-tanh": gemm("gelu", c, side, tma=True, tanh=True) for c, side in BASE_STAGES}
    print(json.dumps(cases))
    return 0


if __name__ == "__main__":
    sys.exit(main())
