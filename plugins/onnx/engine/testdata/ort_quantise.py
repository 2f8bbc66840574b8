"""Quantise an fp32 ONNX decoder the way ONNX Runtime's weight-only quantiser does.

Test fixture for the onnx engine: no real quantised export can be downloaded where the tests run,
so this rewrites an fp32 model directory into the layout that
onnxruntime.quantization.matmul_nbits_quantizer (MatMulNBitsQuantizer with
DefaultWeightOnlyQuantConfig, round-to-nearest) writes, using only the onnx package (Debian's
python3-onnx) and numpy; the file is serialised by onnx itself, not by lemctl's writer.

  python3 ort_quantise.py SRC_DIR DST_DIR FORMAT BITS BLOCK ACCURACY_LEVEL

FORMAT qoperator: every MatMul with a constant 2-D weight B [K, N] becomes com.microsoft
MatMulNBits(A, B_Q{bits}, B_scales, B_zero_points) named <node>_Q{bits}, with attributes K, N,
bits, block_size and accuracy_level (left out when 0, as the quantiser does); B_Q is
uint8 [N, ceil(K/block), block*bits/8], scales float [N*blocks], zero points uint8, two 4-bit
values per byte (low nibble first), [N*ceil(blocks/2)] for 4 bits, [N*blocks] for 8.
FORMAT qdq (4 bits only): DequantizeLinear(B_DQ_Q4 uint4 [K, N], B_DQ_scales [blocks, N],
B_DQ_zero_points uint4 [blocks, N]; axis 0, block_size) feeding a MatMul, opset 21.
Quantisation is asymmetric (the quantiser's default): per block of a column, lo = min(0, min),
hi = max(0, max), scale = (hi - lo) / (2^bits - 1), zero point = round(-lo / scale),
q = clip(round(v / scale + zero point)). Gemm, Gather and every other op are left as they are,
as the quantiser does with its default op types (MatMul only). The result looks like an optimum
export: producer "pytorch", no lemctl metadata, config.json without lemctl_synthetic.
"""

import json
import os
import shutil
import sys

import numpy as np
import onnx
from onnx import helper, numpy_helper

UINT4 = 21  # TensorProto.UINT4 (onnx >= 1.16); data_type is a plain int32 field


def quant_blocks(w, bits, block):
    """Per (block, column): q [kb*block, N] (padded rows hold the zero point), scale and zero
    point [kb, N]."""
    k, n = w.shape
    kb = (k + block - 1) // block
    levels = float((1 << bits) - 1)
    padded = np.zeros((kb * block, n), dtype=np.float32)
    padded[:k] = w
    blocks = padded.reshape(kb, block, n)
    real = np.zeros((kb, block, n), dtype=bool)
    real.reshape(kb * block, n)[:k] = True
    lo = np.minimum(np.where(real, blocks, np.inf).min(axis=1), 0)
    hi = np.maximum(np.where(real, blocks, -np.inf).max(axis=1), 0)
    scale = ((hi - lo) / levels).astype(np.float32)
    scale[scale == 0] = 1
    zp = np.clip(np.round(-lo / scale), 0, levels)
    q = np.clip(np.round(blocks / scale[:, None, :] + zp[:, None, :]), 0, levels)
    q = np.where(real, q, zp[:, None, :])
    return q.astype(np.uint8).reshape(kb * block, n), scale, zp.astype(np.uint8)


def raw_tensor(name, data_type, dims, raw):
    """A TensorProto of raw bytes (helper.make_tensor of onnx 1.12 knows no 4-bit types)."""
    t = onnx.TensorProto()
    t.name, t.data_type, t.raw_data = name, data_type, raw
    t.dims.extend(dims)
    return t


def pack4(flat):
    """Two 4-bit values per byte, the first in the low nibble."""
    flat = flat.astype(np.uint8)
    if len(flat) % 2:
        flat = np.append(flat, np.uint8(0))
    return (flat[0::2] & 0xF) | ((flat[1::2] & 0xF) << 4)


def main():
    src, dst, fmt, bits, block, acc = sys.argv[1:7]
    bits, block, acc = int(bits), int(block), int(acc)
    if fmt not in ("qoperator", "qdq") or bits not in (4, 8) or (fmt == "qdq" and bits != 4):
        sys.exit(f"format {fmt!r} with {bits} bits: want qoperator with 4 or 8 bits, or qdq with 4")
    m = onnx.load(os.path.join(src, "model.onnx"))  # reads model.onnx.data too
    g = m.graph
    inits = {t.name: t for t in g.initializer}
    nodes, drop, added = [], set(), []
    for node in g.node:
        b = inits.get(node.input[1]) if node.op_type == "MatMul" and len(node.input) > 1 else None
        if b is None or len(b.dims) != 2:
            nodes.append(node)
            continue
        w = numpy_helper.to_array(b).astype(np.float32)
        k, n = w.shape
        q, scale, zp = quant_blocks(w, bits, block)
        kb = scale.shape[0]
        drop.add(b.name)
        if fmt == "qoperator":
            per = block * bits // 8
            qn = q.T.reshape(n, kb, block)  # [N, blocks, block]: each block from one column
            if bits == 4:
                packed = pack4(qn.reshape(-1)).reshape(n, kb, per)
                zpp = np.concatenate([pack4(zp[:, c]) for c in range(n)])
            else:
                packed = qn.reshape(n, kb, per)
                zpp = zp.T.reshape(-1)
            added += [
                numpy_helper.from_array(packed, b.name + f"_Q{bits}"),
                numpy_helper.from_array(scale.T.reshape(-1).copy(), b.name + "_scales"),
                numpy_helper.from_array(zpp.astype(np.uint8), b.name + "_zero_points"),
            ]
            attrs = {"K": k, "N": n, "bits": bits, "block_size": block}
            if acc:
                attrs["accuracy_level"] = acc
            nodes.append(helper.make_node(
                "MatMulNBits",
                [node.input[0], b.name + f"_Q{bits}", b.name + "_scales", b.name + "_zero_points"],
                [node.output[0]], name=node.name + f"_Q{bits}" if node.name else "",
                domain="com.microsoft", **attrs))
        else:
            wq = raw_tensor(b.name + "_DQ_Q4", UINT4, [k, n], pack4(q[:k].reshape(-1)).tobytes())
            zq = raw_tensor(b.name + "_DQ_zero_points", UINT4, [kb, n], pack4(zp.reshape(-1)).tobytes())
            added += [wq, numpy_helper.from_array(scale, b.name + "_DQ_scales"), zq]
            out = b.name + "_DQ_Q4_output"
            nodes.append(helper.make_node(
                "DequantizeLinear", [wq.name, b.name + "_DQ_scales", zq.name], [out],
                name=node.name + "_DQ_Q4" if node.name else "", axis=0, block_size=block))
            nodes.append(helper.make_node(
                "MatMul", [node.input[0], out], [node.output[0]],
                name=node.name + "_matmul_Q4" if node.name else ""))
    if not drop:
        sys.exit(f"{src}: no MatMul with a constant 2-D weight to quantise")
    keep = [t for t in g.initializer if t.name not in drop]
    del g.initializer[:]
    g.initializer.extend(keep + added)
    del g.node[:]
    g.node.extend(nodes)
    ops = {o.domain: o for o in m.opset_import}
    if fmt == "qdq":
        ops[""].version = max(ops[""].version, 21)
    elif "com.microsoft" not in ops:
        m.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    m.producer_name, m.producer_version = "pytorch", "2.5.1"
    m.doc_string = ""
    del m.metadata_props[:]
    os.makedirs(dst, exist_ok=True)
    onnx.save(m, os.path.join(dst, "model.onnx"))
    with open(os.path.join(src, "config.json")) as f:
        cfg = json.load(f)
    cfg.pop("lemctl_synthetic", None)
    with open(os.path.join(dst, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    for name in os.listdir(src):
        if name not in ("model.onnx", "model.onnx.data", "config.json") and not name.startswith("."):
            shutil.copy(os.path.join(src, name), os.path.join(dst, name))
    print(f"{len(drop)} MatMul weights quantised ({fmt}, {bits} bits, block {block})")


if __name__ == "__main__":
    main()
