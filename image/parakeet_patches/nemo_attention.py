"""Parakeet's two attention variants, built once and swapped by reference.

Full attention (what Parakeet was trained with) costs memory quadratic in length, so
inputs over LONG_AUDIO_S run on local attention ("rel_pos_local_attn", [256, 256]), the
model cards' long-audio recipe. NeMo's own switch, `change_attention_model`, rebuilds the
attention layers each time, without the checkpoint's `use_bias`, and copies weights with
`strict=False`: on a `use_bias: false` model (Parakeet TDT 0.6B) the new q/k/v/out
projections keep random biases, and every later input, short ones included, runs on a
damaged encoder (NeMo 3.0.0, seen on the real library).

So the switch here calls NeMo once to get the local modules, then makes each of them
share the full variant's own sub-modules and parameters (the same nn.Linear objects and
pos_bias tensors): no random weight survives, no memory is added, and switching back
puts the original module objects back in place, so the short-input encoder is exactly
the one that was loaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

LOCAL_ATTENTION = ("rel_pos_local_attn", [256, 256])


class AttentionSwapError(RuntimeError):
    """The local-attention modules need weights the full ones do not have."""


@dataclass
class Variant:
    name: str
    context: list[int]
    pos_enc: Any
    attentions: list[Any]  # one self_attn module per ConformerLayer, in order


class AttentionSwitch:
    """Holds both variants of one ConformerEncoder; `use(local)` swaps them in."""

    def __init__(self, encoder: Any) -> None:
        self.encoder = encoder
        self.own = self._snapshot()
        self._local: Variant | None = self.own if self.own.name == LOCAL_ATTENTION[0] else None
        self.local_now = self._local is self.own

    def use(self, local: bool) -> None:
        """Put the local (True) or the model's own (False) attention in place."""
        if local == self.local_now:
            return
        self._apply(self._local_variant() if local else self.own)
        self.local_now = local

    def _layers(self) -> list[Any]:
        return [m for m in self.encoder.layers if hasattr(m, "self_attn")]

    def _snapshot(self) -> Variant:
        enc = self.encoder
        return Variant(str(enc.self_attention_model), list(enc.att_context_size),
                       enc.pos_enc, [layer.self_attn for layer in self._layers()])

    def _local_variant(self) -> Variant:
        if self._local is None:
            name, context = LOCAL_ATTENTION
            device = next(self.encoder.parameters()).device
            self.encoder.change_attention_model(name, list(context), update_config=False,
                                                device=device)
            local = self._snapshot()
            for own, new in zip(self.own.attentions, local.attentions):
                share_weights(own, new)
            self._apply(self.own)  # NeMo switched in place; use() decides what runs
            self._local = local
        return self._local

    def _apply(self, variant: Variant) -> None:
        enc = self.encoder
        enc.pos_enc = variant.pos_enc
        enc.self_attention_model = variant.name
        enc.att_context_size = list(variant.context)
        for layer, attention in zip(self._layers(), variant.attentions):
            layer.self_attn = attention
            layer.self_attention_model = variant.name
        enc.set_max_audio_length(enc.pos_emb_max_len)


def share_weights(own: Any, new: Any) -> None:
    """Make `new` (a freshly built attention module) use `own`'s sub-modules and
    parameters. Raises AttentionSwapError if `new` holds a tensor `own` lacks: it would
    run with random weights."""
    for name, child in list(own.named_children()):
        setattr(new, name, child)
    for name, param in list(own.named_parameters(recurse=False)):
        setattr(new, name, param)
    extra = set(new.state_dict()) - set(own.state_dict())
    if extra:
        raise AttentionSwapError(f"local attention adds weights the checkpoint lacks: "
                                 f"{', '.join(sorted(extra))}")
    new.train(own.training)
