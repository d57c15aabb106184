"""Where pwconv1's GEMM kernel spends its time past the matrix product: one experimental copy of the kernel,
timed per base-model stage with parts of its epilogue switched off or swapped, next to cuBLAS and the
kernels in triton_kernels.py. Register and shared-memory use of each variant come from the compiled kernel.

    python3 benchmarks/bench_gemm_epilogue.py h100-exp-gemm-epilogue-erf.json

GELU: 1 libdevice erf, 2 tanh form on the hardware tanh (not the exact GELU: information only), 3 erf by
Abramowitz & Stegun 7.1.26 (what triton_kernels._gelu now does). SUMSQ: 1 tl.sum, 2 on the tensor cores,
3 from the bf16-rounded output. The numbers led to the A&S erf (benchmarks/results/README.md).
"""

from __future__ import annotations

import json
import sys

import torch
import torch.nn.functional as F
import triton
import triton.language as tl

from bench_kernels import time_us
from peaknet_pipeline.model import triton_kernels as tk


@triton.jit
def _exp_kernel(
    a_ptr, w_ptr, bias_ptr, res_ptr, out_ptr, part_ptr, scale_ptr, M, N, K, HW,
    GELU: tl.constexpr, SUMSQ: tl.constexpr, STORE: tl.constexpr, RESIDUAL: tl.constexpr, SCALE_A: tl.constexpr,
    UNROLL: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):  # fmt: skip
    pid_m, rm, rn, nmask = tk._tile(N, BLOCK_M, BLOCK_N)
    frame = (pid_m * BLOCK_M) // HW
    acc = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
    if UNROLL > 0:
        for ki in tl.static_range(UNROLL):
            kk = ki * BLOCK_K + tl.arange(0, BLOCK_K)
            a = tl.load(a_ptr + rm[:, None] * K + kk[None, :])
            w = tl.load(w_ptr + rn[None, :] * K + kk[:, None], mask=nmask[None, :], other=0.0)
            acc = tl.dot(a, w, acc)
    else:
        for k0 in range(0, K, BLOCK_K):
            kk = k0 + tl.arange(0, BLOCK_K)
            a = tl.load(a_ptr + rm[:, None] * K + kk[None, :])
            w = tl.load(w_ptr + rn[None, :] * K + kk[:, None], mask=nmask[None, :], other=0.0)
            if SCALE_A == 1:
                s = tl.load(scale_ptr + frame * K + kk)
                a = (a.to(tl.float32) * s[None, :]).to(a_ptr.dtype.element_ty)
            if SCALE_A == 2:  # bf16 multiply: two per instruction, no conversions of `a`
                s = tl.load(scale_ptr + frame * K + kk).to(a_ptr.dtype.element_ty)
                a = a * s[None, :]
            acc = tl.dot(a, w, acc)
    acc += tl.load(bias_ptr + rn, mask=nmask, other=0.0).to(tl.float32)[None, :]
    offs = rm[:, None] * N + rn[None, :]
    if GELU == 1:
        acc = 0.5 * acc * (1.0 + tl.erf(acc * 0.7071067811865476))
    if GELU == 2:  # tanh form with the hardware tanh (information only: not the exact GELU)
        t = tl.inline_asm_elementwise(
            "tanh.approx.f32 $0, $1;",
            "=f,f",
            [0.7978845608 * (acc + 0.044715 * acc * acc * acc)],
            dtype=tl.float32,
            is_pure=True,
            pack=1,
        )
        acc = 0.5 * acc * (1.0 + t)
    if GELU == 3:  # erf by Abramowitz & Stegun 7.1.26, as triton_kernels._gelu
        acc = tk._gelu(acc)
    if SUMSQ == 1:
        tl.store(part_ptr + pid_m * N + rn, tl.sum(acc * acc, axis=0), mask=nmask)
    if SUMSQ == 2:  # column sums on the tensor cores: ones (16, BM) @ squares (BM, BN)
        ones = tl.full([16, BLOCK_M], 1.0, tl.bfloat16)
        sums = tl.dot(ones, (acc * acc).to(tl.bfloat16))
        tl.store(part_ptr + pid_m * N + rn, tl.max(sums, axis=0), mask=nmask)
    if SUMSQ == 3:  # from the bf16 output, as stored
        o = acc.to(out_ptr.dtype.element_ty).to(tl.float32)
        tl.store(part_ptr + pid_m * N + rn, tl.sum(o * o, axis=0), mask=nmask)
    if RESIDUAL:
        acc += tl.load(res_ptr + offs, mask=nmask[None, :], other=0.0).to(tl.float32)
    if STORE:
        tl.store(out_ptr + offs, acc.to(out_ptr.dtype.element_ty), mask=nmask[None, :])


def run_exp(a, w, bias, hw, res=None, scale=None, scale_mode=1, gelu=0, sumsq=0, store=True, unroll=False,
            bm=128, bn=64, bk=32, warps=4, stages=3, info=None):  # fmt: skip
    m, k = a.shape
    n = w.shape[0]
    out = torch.empty((m, n), dtype=a.dtype, device=a.device)
    part = torch.empty((m // bm, n), dtype=torch.float32, device=a.device)
    grid = ((m // bm) * triton.cdiv(n, bn),)
    compiled = _exp_kernel[grid](
        a, w, bias, res if res is not None else out, out, part, scale if scale is not None else part, m, n, k, hw,
        GELU=gelu, SUMSQ=sumsq, STORE=store, RESIDUAL=res is not None, SCALE_A=scale_mode if scale is not None else 0,
        UNROLL=k // bk if unroll else 0, BLOCK_M=bm, BLOCK_N=bn, BLOCK_K=bk, num_warps=warps, num_stages=stages,
    )  # fmt: skip
    if info is not None:
        info.update(regs=compiled.n_regs, spills=compiled.n_spills, smem=compiled.metadata.shared)
    return out, part


def stage(batch: int, size: int, c: int, stride: int) -> dict:
    bf, dev = torch.bfloat16, "cuda"
    hw = (size // stride) ** 2
    m = batch * hw
    y = torch.randn(m, c, device=dev, dtype=bf)
    w1, b1 = torch.randn(4 * c, c, device=dev, dtype=bf) * 0.05, torch.zeros(4 * c, device=dev, dtype=bf)
    w2, b2 = torch.randn(c, 4 * c, device=dev, dtype=bf) * 0.05, torch.zeros(c, device=dev, dtype=bf)
    s2 = torch.rand(batch, 4 * c, device=dev) + 0.5
    a = tk.linear(y, w1, b1, hw, gelu_sumsq=True)[0]
    res = torch.randn(m, c, device=dev, dtype=bf)
    r = {"channels": c, "hw": hw}
    r["cublas_pw1_us"] = time_us(lambda: F.linear(y, w1, b1))
    r["cur_pw1_us"] = time_us(lambda: tk.linear(y, w1, b1, hw, gelu_sumsq=True))
    r["cur_pw2_us"] = time_us(lambda: tk.linear(a, w2, b2, hw, residual=res, a_scale=s2))
    bk1 = 64 if c >= 384 else 32
    pw1 = dict(gelu=1, sumsq=1, bk=bk1)
    variants = {
        "pw1": pw1,
        "pw1_bias_only": dict(bk=bk1),
        "pw1_gelu": dict(gelu=1, bk=bk1),
        "pw1_sumsq": dict(sumsq=1, bk=bk1),
        "pw1_gelu_nostore": dict(gelu=1, store=False, bk=bk1),
        "pw1_sumsq_dot": dict(pw1, sumsq=2),
        "pw1_sumsq_bf16": dict(pw1, sumsq=3),
        "pw1_tanh": dict(pw1, gelu=2),
        "pw1_as": dict(pw1, gelu=3),
        "pw1_w8": dict(pw1, warps=8),
        "pw1_bm64": dict(pw1, bm=64),
        "pw1_unroll": dict(pw1, unroll=True),
        "pw1_unroll_s2": dict(pw1, unroll=True, stages=2),
        "pw1_bn128_w8_unroll": dict(pw1, unroll=True, bn=128, warps=8),
        "pw1_bn32": dict(pw1, bn=32),
    }
    for name, kw in variants.items():
        info = {}
        try:
            r[name] = {"us": time_us(lambda kw=kw: run_exp(y, w1, b1, hw, **kw)), **info}
            run_exp(y, w1, b1, hw, **kw, info=r[name])
        except Exception as exc:
            r[name] = f"{type(exc).__name__}: {str(exc)[:300]}"
    bn2, w2n = (256, 8) if c >= 384 else (64, 4)
    bk2 = 64 if c >= 384 else 32
    pw2 = dict(res=res, scale=s2, bn=bn2, warps=w2n, bk=bk2)
    pw2v = {
        "pw2": pw2,
        "pw2_noscale": dict(pw2, scale=None),
        "pw2_scale_bf16": dict(pw2, scale_mode=2),
    }
    for name, kw in pw2v.items():
        try:
            r[name] = {"us": time_us(lambda kw=kw: run_exp(a, w2, b2, hw, **kw))}
            run_exp(a, w2, b2, hw, **kw, info=r[name])
        except Exception as exc:
            r[name] = f"{type(exc).__name__}: {str(exc)[:300]}"
    ref, ref_part = tk.linear(y, w1, b1, hw, gelu_sumsq=True)
    for name in ("pw1_as", "pw1_tanh"):
        got, _ = run_exp(y, w1, b1, hw, **variants[name])
        r[name + "_max_abs_err"] = float((got.float() - ref.float()).abs().max())
        r[name + "_max_abs_err_vs_fp32"] = float(
            (got.float() - F.gelu(F.linear(y.float(), w1.float(), b1.float()))).abs().max()
        )
    r["cur_max_abs_err_vs_fp32"] = float(
        (ref.float() - F.gelu(F.linear(y.float(), w1.float(), b1.float()))).abs().max()
    )
    for name in ("pw1_sumsq_dot", "pw1_sumsq_bf16", "pw1_unroll"):
        got, got_part = run_exp(y, w1, b1, hw, **variants[name])
        r[name + "_part_rel_err"] = float(((got_part.view(batch, -1, 4 * c).sum(1) - ref_part).abs() / ref_part).max())
    print(json.dumps(r), flush=True)
    return r


def main():
    batch, size = 32, 512
    rows = [stage(batch, size, c, stride) for c, stride in ((96, 4), (192, 8), (384, 16), (768, 32))]
    json.dump({"gpu": torch.cuda.get_device_name(), "batch": batch, "size": size, "stages": rows},
              open(sys.argv[1], "w"), indent=1)  # fmt: skip


if __name__ == "__main__":
    main()
