"""PyTorch half of bench/compare.sh: the median wall-clock of whole training steps, measured like
`skfac bench-step` (random batch, SGD lr 0.01 momentum 0.9 weight decay 5e-4, warm-up untimed).

    pytorch_step.py MODEL BATCH THREADS [--steps 8] [--warmup 3] [--channels-last]
                    [--device cpu|cuda[:N]] [--tf32]

The models are the harness's: the CIFAR ResNets (option-A shortcuts), ResNet-34 with a CIFAR
stem, VGG-11 with BatchNorm, the MLP, and ResNet-50 (v1.5, 224x224, 1000 classes). On a GPU
every stage boundary waits for the device, as `skfac bench-step --device cuda` does, and
convolutions and matmuls compute in full FP32 as skfac's do (PyTorch's default lets cuDNN use
TF32; `--tf32` allows it). The last line printed is `N img/s` (BATCH / median step
seconds)."""

import argparse
import os
import sys

p = argparse.ArgumentParser()
p.add_argument("model", choices=["mlp", "resnet8", "resnet20", "resnet34", "vgg11", "resnet50"])
p.add_argument("batch", type=int)
p.add_argument("threads", type=int)
p.add_argument("--steps", type=int, default=8)
p.add_argument("--warmup", type=int, default=3)
p.add_argument("--channels-last", action="store_true")
p.add_argument("--device", default="cpu")
p.add_argument("--tf32", action="store_true")
args = p.parse_args()

# OpenMP and MKL size their pools when torch loads, so the env must be set before the import.
for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = str(args.threads)

import statistics  # noqa: E402
import time  # noqa: E402

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

torch.set_num_threads(args.threads)
torch.backends.cudnn.allow_tf32 = args.tf32
torch.backends.cuda.matmul.allow_tf32 = args.tf32


def conv3x3(c_in, c_out, stride=1):
    return nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)


class BasicBlock(nn.Module):
    def __init__(self, c_in, planes, stride):
        super().__init__()
        self.conv1, self.bn1 = conv3x3(c_in, planes, stride), nn.BatchNorm2d(planes)
        self.conv2, self.bn2 = conv3x3(planes, planes), nn.BatchNorm2d(planes)
        # Option A (He et al. §4.2): parameter-free shortcut, subsample and zero-pad channels.
        self.pad = planes // 4 if (stride != 1 or c_in != planes) else None

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        sc = x if self.pad is None else F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad))
        return F.relu(out + sc)


class ProjectedBlock(nn.Module):
    """ResNet-34's basic block: two 3x3 convolutions, a 1x1 projection when the shape changes."""

    def __init__(self, c_in, planes, stride):
        super().__init__()
        self.conv1, self.bn1 = conv3x3(c_in, planes, stride), nn.BatchNorm2d(planes)
        self.conv2, self.bn2 = conv3x3(planes, planes), nn.BatchNorm2d(planes)
        self.down = None
        if stride != 1 or c_in != planes:
            self.down = nn.Sequential(
                nn.Conv2d(c_in, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x):
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(out + (x if self.down is None else self.down(x)))


class Bottleneck(nn.Module):
    """ResNet-50's block (v1.5: the stride on the 3x3 convolution), 4x expansion."""

    def __init__(self, c_in, width, stride):
        super().__init__()
        c_out = 4 * width
        self.body = nn.Sequential(
            nn.Conv2d(c_in, width, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
            conv3x3(width, width, stride), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
            nn.Conv2d(width, c_out, 1, bias=False), nn.BatchNorm2d(c_out))
        self.down = None
        if stride != 1 or c_in != c_out:
            self.down = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x):
        return F.relu(self.body(x) + (x if self.down is None else self.down(x)))


class DeepResNet(nn.Module):
    """ResNet-34 (CIFAR stem: 3x3, no pooling) or ResNet-50 (ImageNet stem: 7x7/2, max pool)."""

    def __init__(self, block, expansion, imagenet_stem, classes):
        super().__init__()
        if imagenet_stem:
            self.stem = nn.Sequential(
                nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True),
                nn.MaxPool2d(3, 2, 1))
        else:
            self.stem = nn.Sequential(conv3x3(3, 64), nn.BatchNorm2d(64), nn.ReLU(inplace=True))
        blocks, c = [], 64
        for stage, (n, width) in enumerate([(3, 64), (4, 128), (6, 256), (3, 512)]):
            for i in range(n):
                blocks.append(block(c, width, 2 if stage > 0 and i == 0 else 1))
                c = width * expansion
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(c, classes)

    def forward(self, x):
        return self.fc(self.blocks(self.stem(x)).mean(dim=(2, 3)))


class CifarResNet(nn.Module):
    def __init__(self, n, classes=10):
        super().__init__()
        self.conv, self.bn = conv3x3(3, 16), nn.BatchNorm2d(16)
        blocks, c = [], 16
        for stage, width in enumerate((16, 32, 64)):
            for i in range(n):
                blocks.append(BasicBlock(c, width, 2 if stage > 0 and i == 0 else 1))
                c = width
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(64, classes)

    def forward(self, x):
        x = self.blocks(F.relu(self.bn(self.conv(x))))
        return self.fc(x.mean(dim=(2, 3)))


def vgg11(classes=10):
    layers, c = [], 3
    for w in [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"]:
        if w == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [conv3x3(c, w), nn.BatchNorm2d(w), nn.ReLU(inplace=True)]
            c = w
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(512, classes))


def mlp(classes=10):
    return nn.Sequential(
        nn.Flatten(), nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 256), nn.ReLU(),
        nn.Linear(256, classes),
    )


torch.manual_seed(0)
model = {
    "resnet8": lambda: CifarResNet(1),
    "resnet20": lambda: CifarResNet(3),
    "resnet34": lambda: DeepResNet(ProjectedBlock, 1, False, 10),
    "vgg11": vgg11,
    "mlp": mlp,
    "resnet50": lambda: DeepResNet(Bottleneck, 4, True, 1000),
}[args.model]()
device = torch.device(args.device)
shape = {"mlp": (args.batch, 1, 28, 28), "resnet50": (args.batch, 3, 224, 224)}.get(
    args.model, (args.batch, 3, 32, 32))
classes = 1000 if args.model == "resnet50" else 10
model = model.to(device)
x = torch.randn(shape, device=device)
y = torch.randint(0, classes, (args.batch,), device=device)
if args.channels_last and x.dim() == 4:
    model = model.to(memory_format=torch.channels_last)
    x = x.contiguous(memory_format=torch.channels_last)
model.train()
opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)

n_params = sum(p.numel() for p in model.parameters())
where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{args.threads} threads"
print(f"{args.model}: {n_params:,} parameters, batch {args.batch}, {where}, "
      f"torch {torch.__version__}{', channels_last' if args.channels_last else ''}"
      f"{', TF32' if args.tf32 else ''}")


def now():
    """The time once the device's queued work is done: device time, not launch time."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()



times = []  # (forward, backward, update) seconds per timed step
for step in range(args.warmup + args.steps):
    t0 = now()
    loss = F.cross_entropy(model(x), y)
    t1 = now()
    loss.backward()
    t2 = now()
    opt.step()
    opt.zero_grad(set_to_none=True)
    t3 = now()
    if not torch.isfinite(loss):
        sys.exit(f"the benchmark diverged (loss {loss.item()})")
    if step >= args.warmup:
        times.append((t1 - t0, t2 - t1, t3 - t2))

med = [statistics.median(col) for col in zip(*times)]
total = statistics.median(sum(t) for t in times)
print(f"forward {med[0] * 1e3:.1f} ms, backward {med[1] * 1e3:.1f} ms, "
      f"update {med[2] * 1e3:.1f} ms (median of {args.steps} steps)")
print(f"step {total * 1e3:.1f} ms")
print(f"{args.batch / total:.1f} img/s")
