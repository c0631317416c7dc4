"""VGG-16 / VGG-19 feature extractors for perceptual losses, layers named as in the papers.

``vgg(name, layers)`` returns a frozen network whose forward pass gives the
activations of the named layers. Names follow the VGG paper's blocks (Simonyan &
Zisserman 2015, Table 1): block ``b`` (1..5, separated by max-pooling) holds
convolutions ``conv{b}_{i}``, each followed by ``relu{b}_{i}``, and ends with
``pool{b}``. VGG-16 (configuration D) has 2, 2, 3, 3, 3 convolutions per block,
VGG-19 (configuration E) 2, 2, 4, 4, 4, so ``relu5_4`` exists only in VGG-19. The
names are derived by walking torchvision's ``features`` Sequential, not typed in.

The papers: One-to-Many (Guo & Chao 2017, Sec. 3.3.1) writes "the 16-layer VGGNet
... Layer relu5_4"; VGG-16 has no relu5_4 (its last convolution is conv5_3), so
asking VGG-16 for it raises a ValueError listing the layers there are; which one
the project uses is decided in the notebook. Man et al. 2023 (Eq. 6) use VGG-19's
"VGG_5,4" at "the specified convolutional layer": ``conv5_4`` (before the ReLU)
and ``relu5_4`` are both addressable.

Input convention: RGB images as float tensors ``(N, 3, H, W)`` in [0, 1] (not 0..255);
a 1-channel (luma) input is repeated to 3 channels. The extractor subtracts
torchvision's ImageNet mean and divides by its std, the normalisation torchvision's
VGG weights were trained with. The network is cut after the deepest requested layer,
its ReLUs are made out-of-place (so a returned ``conv`` activation is not overwritten
by the next ReLU), every parameter has ``requires_grad=False`` and it stays in eval mode.
Gradients still flow to the input, which is what a perceptual loss needs.

Weights: ``vgg16`` and ``vgg19`` load torchvision's ImageNet files, found and
verified by ``paperlib.weights`` (never a silent fallback: ``WeightsNotFound`` if
missing). ``vgg19-random`` is a stand-in for machines without those files, for
training losses only: VGG-19 with He-normal weights (std sqrt(2 / fan_in), fan_in =
in_channels * 3 * 3, so activation variance is kept through the ReLU layers in the
forward pass; He et al. 2015) drawn from numpy's PCG64 with a fixed seed, biases zero.
Random-weight convolutional features are a documented texture/perceptual prior
(Ustyuzhaninov et al., ICLR 2017; He, Wang & Hopcroft, NeurIPS 2016), but they are
NOT pretrained features. It is only given when named and ``allow_stand_in=True``;
every extractor carries ``weights_label`` saying which network it is, for
manifests and captions. Never compute an FID-like score with the stand-in.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from . import weights as _weights

__all__ = ["ARCHS", "STAND_IN", "IMAGENET_MEAN", "IMAGENET_STD", "layer_names", "vgg", "VGGFeatures", "load_features"]

STAND_IN = "vgg19-random"
ARCHS = ("vgg16", "vgg19", STAND_IN)
IMAGENET_MEAN = (0.485, 0.456, 0.406)  # torchvision's ImageClassification preset (the VGG weights' training)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _skeleton(arch: str) -> nn.Sequential:
    """torchvision's ``features`` of ``vgg16``/``vgg19`` on the meta device (no memory, no initialisation)."""
    import torchvision
    with torch.device("meta"):
        return getattr(torchvision.models, arch)(weights=None).features


def _names(features: nn.Sequential) -> list:
    """The paper's name of every module of ``features``, by walking it: conv/relu counted per pooling block."""
    out, block, conv = [], 1, 0
    for m in features:
        if isinstance(m, nn.Conv2d):
            conv += 1
            out.append(f"conv{block}_{conv}")
        elif isinstance(m, nn.ReLU):
            out.append(f"relu{block}_{conv}")
        elif isinstance(m, nn.MaxPool2d):
            out.append(f"pool{block}")
            block, conv = block + 1, 0
        else:
            raise ValueError(f"unexpected module {m} in the VGG feature stack")
    return out


def _arch(name: str) -> str:
    if name not in ARCHS:
        raise ValueError(f"unknown network {name!r}; choose one of {', '.join(ARCHS)}")
    return "vgg19" if name == STAND_IN else name


def layer_names(name: str) -> list:
    """Every addressable layer of ``name`` (``vgg16``, ``vgg19`` or ``vgg19-random``), input to output."""
    return _names(_skeleton(_arch(name)))


def _he_normal_(features: nn.Sequential, seed: int) -> None:
    """He-normal (fan_in) conv weights from numpy's PCG64(seed), biases zero: bit-identical on any machine."""
    rng = np.random.default_rng(seed)
    with torch.no_grad():
        for m in features:
            if isinstance(m, nn.Conv2d):
                fan_in = m.in_channels * m.kernel_size[0] * m.kernel_size[1]
                w = rng.standard_normal(tuple(m.weight.shape)) * np.sqrt(2.0 / fan_in)
                m.weight.copy_(torch.from_numpy(w.astype(np.float32)))
                m.bias.zero_()


class VGGFeatures(nn.Module):
    """Frozen, truncated VGG ``features``; ``forward(x)`` returns ``{layer: activation}`` in the requested order."""

    def __init__(self, features: nn.Sequential, names: list, layers: tuple, weights_label: str, weights_path=None):
        super().__init__()
        index = {n: i for i, n in enumerate(names)}
        self.layers = tuple(layers)
        self._taps = {index[n]: n for n in self.layers}
        self.body = features[: max(self._taps) + 1]
        for m in self.body:
            if isinstance(m, nn.ReLU):
                m.inplace = False
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        self.weights_label = weights_label
        self.weights_path = weights_path
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True):
        return super().train(False)  # frozen: always eval (VGG features have no dropout/BN, but be explicit)

    def forward(self, x: torch.Tensor) -> dict:
        if x.ndim != 4 or x.shape[1] not in (1, 3):
            raise ValueError(f"expected images (N, 3 or 1, H, W) in [0, 1], got shape {tuple(x.shape)}")
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        h = (x - self.mean) / self.std
        out = {}
        for i, m in enumerate(self.body):
            h = m(h)
            if i in self._taps:
                out[self._taps[i]] = h
        return {n: out[n] for n in self.layers}

    def extra_repr(self) -> str:
        return f"layers={self.layers}, weights={self.weights_label!r}"


def vgg(name: str, layers, weights_path=None, allow_stand_in: bool = False, seed: int = 0) -> VGGFeatures:
    """A frozen VGG feature extractor for ``layers`` (e.g. ``["relu5_4"]`` or ``"relu2_2"``).

    ``name``: ``vgg16`` or ``vgg19`` (torchvision's ImageNet weights, resolved by
    ``paperlib.weights.resolve(name, weights_path)``; ``WeightsNotFound`` when absent,
    whatever ``allow_stand_in`` says), or ``vgg19-random`` (the stand-in; needs
    ``allow_stand_in=True``; ``seed`` picks its weights). The result's ``weights_label``
    names the network actually used.
    """
    arch = _arch(name)
    layers = (layers,) if isinstance(layers, str) else tuple(layers)
    features = _skeleton(arch)
    names = _names(features)
    unknown = [n for n in layers if n not in names]
    if not layers or unknown:
        raise ValueError(f"{name} has no layer {', '.join(unknown) or '(none requested)'}; its layers: "
                         f"{', '.join(names)}")
    if name == STAND_IN:
        if not allow_stand_in:
            raise ValueError(f"{STAND_IN} has random weights, not pretrained ones; pass allow_stand_in=True to "
                             "use it knowingly (training losses only, never an FID)")
        if weights_path is not None:
            raise ValueError(f"{STAND_IN} takes no weights file (it is generated from seed={seed})")
        features = features.to_empty(device="cpu")
        _he_normal_(features, seed)
        label = (f"{STAND_IN} (stand-in: random He-normal weights, fan_in, numpy seed {seed}, biases zero; "
                 "NOT pretrained)")
        return VGGFeatures(features, names, layers, label)
    path = _weights.resolve(name, weights_path)
    state = torch.load(path, map_location="cpu", weights_only=True)
    prefix = "features."
    conv = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    features.load_state_dict(conv, strict=True, assign=True)
    label = f"{name} (torchvision {_weights.manifest(name)['file']}, sha256 verified)"
    return VGGFeatures(features, names, layers, label, weights_path=path)


def load_features(layer: str = "relu5_4", device="cpu") -> VGGFeatures:
    """VGG-19 features at ``layer`` for a training loss (One-to-Many's L_percept, Man et al.'s P): the real
    weights when ``paperlib.weights`` finds them locally (it does not download 550 MB behind a training run's
    back: ``python -m paperlib weights fetch vgg19`` does), else the labelled stand-in ``vgg19-random``, said
    on stderr; the extractor's ``weights_label`` says which."""
    import sys
    try:
        path = _weights.resolve("vgg19", download=False)
    except _weights.WeightsNotFound:
        print(f"VGG-19 weights not found ({_weights.manifest('vgg19')['file']}; see `python -m paperlib weights "
              f"list`): the perceptual loss uses the stand-in {STAND_IN} (random weights, NOT pretrained)",
              file=sys.stderr)
        return vgg(STAND_IN, [layer], allow_stand_in=True).to(device)
    return vgg("vgg19", [layer], weights_path=path).to(device)
