"""The patch classifier (PyTorch; imported when a network is built, never by the zoo listing).

The authors' ``Classifier`` on one (Y) channel: conv 4x4 stride 4 (1 -> 128) + LeakyReLU(0.1),
three conv 1x1 128 -> 128 + LeakyReLU(0.1), conv 1x1 128 -> 32, global average pool, linear
32 -> 3; softmax gives the probabilities (easy / medium / hard). Convs get the authors' init
(Kaiming-normal x 0.1, zero bias); the linear layer keeps PyTorch's default, as theirs does.

Apart from :class:`~harness.models.classsr.networks.ClassSR` because :func:`.routing.patch_macs`
counts the classifier's MACs and ClassSR's routed forward records them: routing -> classifier,
networks -> routing, no cycle.
"""
from __future__ import annotations

try:
    import torch
    from torch import nn
except ImportError:  # no PyTorch (a device venv): the module imports, building a network raises (torchless)
    from ..nets import torchless as nn
    torch = None

from .spec import BRANCH_IDS

CLASSIFIER_FEATURES, CLASSIFIER_SQUEEZE = 128, 32


class Classifier(nn.Module):
    """The authors' patch classifier on one (Y) channel: strided conv, 1x1 convs, GAP, linear -> logits."""

    def __init__(self, classes: int = len(BRANCH_IDS)):
        super().__init__()
        f, q = CLASSIFIER_FEATURES, CLASSIFIER_SQUEEZE
        self.body = nn.Sequential(
            nn.Conv2d(1, f, 4, stride=4), nn.LeakyReLU(0.1, inplace=True),
            nn.Conv2d(f, f, 1), nn.LeakyReLU(0.1, inplace=True),
            nn.Conv2d(f, f, 1), nn.LeakyReLU(0.1, inplace=True),
            nn.Conv2d(f, f, 1), nn.LeakyReLU(0.1, inplace=True),
            nn.Conv2d(f, q, 1))
        self.fc = nn.Linear(q, classes)
        with torch.no_grad():  # the authors' initialize_weights([CondNet], 0.1); lastOut keeps the default
            for m in self.body:
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, a=0, mode="fan_in")
                    m.weight.mul_(0.1)
                    m.bias.zero_()

    def forward(self, x):
        # mean over H, W rather than AvgPool2d(size): no spatial size is frozen into an export
        return self.fc(self.body(x).mean(dim=(2, 3)))


class ClassifierProbs(nn.Module):
    """The classifier with its softmax: the exported graph (input ``lr``, output ``probs``)."""

    def __init__(self, classifier):
        super().__init__()
        self.classifier = classifier

    def forward(self, x):
        return torch.softmax(self.classifier(x), dim=1)
