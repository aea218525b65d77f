"""Use a searched genotype in your own training code, then deploy without it.

    python examples/train_with_aux.py                      # the paper's `basic` structure
    python examples/train_with_aux.py --genotype best.json # a genotype exported by auxnas

Everything here but `search_space` is "your" code: your encoder, your multi-task network, your
data (synthetic scenes made on the fly) and your training loop. The auxiliary modules read the
encoder's feature maps during training only, supervised by each task's own loss (paper eq. 3:
sum_t L_t(main_t) + aux_weight * sum_t L_t(aux_t)); for inference they are dropped, so the
deployed network is exactly the network without them. Runs on the CPU in well under a minute.
"""

from __future__ import annotations

import argparse
import math
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn

from auxnas.search_space import GenotypeError, SearchSpace, basic_genotype, load_genotype_file
from auxnas.search_space.builder import AuxiliaryModules, count_parameters

NUM_CLASSES = 4  # wall, floor, box, ball
TASK_CHANNELS = {"segmentation": NUM_CLASSES, "depth": 1, "normal": 3}


# ---------------------------------------------------------------- your data: synthetic scenes
class Scenes:
    """RGB images of a wall, a floor, boxes and balls with consistent labels, depth and normals."""

    def __init__(self, size: int, seed: int) -> None:
        self.size = size
        self.gen = torch.Generator().manual_seed(seed)

    def _rand(self, lo: float, hi: float) -> float:
        return lo + (hi - lo) * torch.rand((), generator=self.gen).item()

    def scene(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        s = self.size
        ys = torch.linspace(0, 1, s).view(s, 1).expand(s, s)
        xs = torch.linspace(0, 1, s).view(1, s).expand(s, s)
        horizon = self._rand(0.35, 0.65)
        floor = ys > horizon
        label = floor.long()  # 0 wall, 1 floor
        # the floor comes closer towards the bottom of the image; the wall stands behind it
        depth = torch.where(
            floor, 2.0 + 6.0 * (1.0 - (ys - horizon) / (1.0 - horizon)), torch.full_like(ys, 8.0)
        )
        normal = torch.zeros(3, s, s)
        normal[1][floor] = 1.0  # floor faces up
        normal[2][~floor] = 1.0  # wall faces the camera
        objects = []
        for _ in range(int(self._rand(1, 4))):
            objects.append(
                (
                    self._rand(2.0, 7.0),
                    int(self._rand(2, 4)),
                    self._rand(0.1, 0.9),
                    self._rand(0.1, 0.9),
                    self._rand(0.08, 0.22),
                )
            )
        for d, cls, cy, cx, r in sorted(objects, reverse=True):  # far to near: near objects cover
            if cls == 2:  # box: a square facing the camera
                mask = ((ys - cy).abs() < r) & ((xs - cx).abs() < r)
                depth = torch.where(mask, torch.full_like(depth, d), depth)
                normal[:, mask] = torch.tensor([0.0, 0.0, 1.0]).view(3, 1)
            else:  # ball: a sphere, its surface bulging towards the camera
                dy, dx = ys - cy, xs - cx
                rho2 = dy**2 + dx**2
                mask = rho2 < r**2
                dz = torch.sqrt((r**2 - rho2).clamp(min=0))
                depth = torch.where(mask, d - 4.0 * dz, depth)
                n = torch.stack([dx, -dy, dz]) / r
                normal[:, mask] = n[:, mask]
            label = torch.where(mask, torch.full_like(label, cls), label)
        palette = torch.tensor([[0.8, 0.7, 0.6], [0.35, 0.3, 0.25], [0.2, 0.4, 0.8], [0.85, 0.2, 0.2]])
        light = torch.tensor([0.3, 0.6, 0.74]).view(3, 1, 1)
        shade = 0.5 + 0.5 * (normal * light).sum(0, keepdim=True)
        image = palette[label].permute(2, 0, 1) * shade / (1.0 + 0.05 * depth)
        image = image + 0.03 * torch.randn(image.shape, generator=self.gen)
        return image, label, depth.unsqueeze(0), normal

    def batch(self, n: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        images, labels, depths, normals = zip(*(self.scene() for _ in range(n)), strict=True)
        targets = {
            "segmentation": torch.stack(labels),
            "depth": torch.stack(depths),
            "normal": torch.stack(normals),
        }
        return torch.stack(images), targets


def batches(images: torch.Tensor, targets: dict[str, torch.Tensor], batch_size: int, seed: int):
    """Endless shuffled mini-batches of a fixed training set."""
    gen = torch.Generator().manual_seed(seed)
    while True:
        order = torch.randperm(len(images), generator=gen)
        for i in range(0, len(order) - batch_size + 1, batch_size):
            idx = order[i : i + batch_size]
            yield images[idx], {t: v[idx] for t, v in targets.items()}


# ---------------------------------------------------------------- your network
class MyEncoder(nn.Module):
    """A small backbone; returns every stage's output, shallow to deep."""

    def __init__(self, num_stages: int) -> None:
        super().__init__()
        self.channels = [16 * (i + 1) for i in range(num_stages)]
        stages, c_in = [], 3
        for i, c in enumerate(self.channels):
            stride = 2 if i < 3 else 1  # keep the deepest maps at least 1/8 of the input
            stages.append(
                nn.Sequential(
                    nn.Conv2d(c_in, c, 3, stride=stride, padding=1, bias=False),
                    nn.BatchNorm2d(c),
                    nn.ReLU(inplace=True),
                    nn.Conv2d(c, c, 3, padding=1, bias=False),
                    nn.BatchNorm2d(c),
                    nn.ReLU(inplace=True),
                )
            )
            c_in = c
        self.stages = nn.ModuleList(stages)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = []
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        return features


class MultiTaskNet(nn.Module):
    """Hard parameter sharing: one encoder, one head per task. This is the network you deploy."""

    def __init__(self, tasks: list[str], num_stages: int) -> None:
        super().__init__()
        self.encoder = MyEncoder(num_stages)
        c = self.encoder.channels[-1]
        self.heads = nn.ModuleDict(
            {
                t: nn.Sequential(
                    nn.Conv2d(c, 64, 3, padding=1, bias=False),
                    nn.BatchNorm2d(64),
                    nn.ReLU(inplace=True),
                    nn.Conv2d(64, TASK_CHANNELS[t], 1),
                )
                for t in tasks
            }
        )

    def forward(self, x: torch.Tensor) -> tuple[dict[str, torch.Tensor], list[torch.Tensor]]:
        features = self.encoder(x)
        size = x.shape[-2:]
        outputs = {
            t: F.interpolate(head(features[-1]), size=size, mode="bilinear", align_corners=False)
            for t, head in self.heads.items()
        }
        return outputs, features


# ---------------------------------------------------------------- your losses and metrics
def task_loss(task: str, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    if task == "segmentation":
        return F.cross_entropy(pred, target, ignore_index=-1)
    if task == "depth":
        return F.l1_loss(pred, target)
    return (1.0 - F.cosine_similarity(pred, target, dim=1)).mean()  # normal


@torch.no_grad()
def metrics(outputs: dict[str, torch.Tensor], targets: dict[str, torch.Tensor]) -> dict[str, float]:
    result = {}
    if "segmentation" in outputs:
        pred, true = outputs["segmentation"].argmax(1), targets["segmentation"]
        ious = []
        for c in range(NUM_CLASSES):
            union = ((pred == c) | (true == c)).sum().item()
            if union:
                ious.append(((pred == c) & (true == c)).sum().item() / union)
        result["segmentation mIoU"] = sum(ious) / len(ious)
    if "depth" in outputs:
        result["depth abs err"] = (outputs["depth"] - targets["depth"]).abs().mean().item()
    if "normal" in outputs:
        cos = F.cosine_similarity(outputs["normal"], targets["normal"], dim=1).clamp(-1, 1)
        result["normal mean angle"] = math.degrees(torch.acos(cos).mean().item())
    return result


def describe(values: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.3f}" for k, v in values.items())


# ---------------------------------------------------------------- training with, deploying without
def load_genotype(path: str | None):
    if path is None:
        return basic_genotype(SearchSpace(num_inputs=3, tasks=tuple(TASK_CHANNELS)))
    try:
        genotype, _ = load_genotype_file(path)
    except GenotypeError as e:
        sys.exit(f"error: {e}" if str(e).startswith(path) else f"error: {path}: {e}")
    unknown = [t for t in genotype.space.tasks if t not in TASK_CHANNELS]
    if unknown:
        sys.exit(
            f"error: {path}: task {unknown[0]!r}: this example has data for {', '.join(TASK_CHANNELS)} only"
        )
    return genotype


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--genotype", help="genotype JSON exported by auxnas (default: the `basic` structure)"
    )
    parser.add_argument("--steps", type=int, default=150, help="training steps (default 150)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--train-images", type=int, default=320, help="synthetic training scenes")
    parser.add_argument("--size", type=int, default=32, help="image side in pixels")
    parser.add_argument("--aux-channels", type=int, default=32, help="C inside the auxiliary modules")
    parser.add_argument("--aux-weight", type=float, default=1.0, help="weight of the auxiliary losses")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save", help="write the deployable network's state_dict here")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="CPU threads for torch (default 1: small convolutions gain little from more)",
    )
    args = parser.parse_args(argv)
    if min(args.steps, args.batch_size, args.aux_channels) < 1 or args.size < 16:
        parser.error("--steps, --batch-size and --aux-channels must be >= 1, --size >= 16")
    if args.threads < 1:
        parser.error("--threads must be >= 1")
    if args.train_images < args.batch_size:
        parser.error("--train-images must be at least --batch-size")

    # Convolutions this small gain little from more threads, and on a busy machine more threads
    # are far slower (measured: bench/example_train_with_aux.py).
    torch.set_num_threads(args.threads)
    genotype = load_genotype(args.genotype)
    tasks = list(genotype.space.tasks)
    torch.manual_seed(args.seed)
    net = MultiTaskNet(tasks, num_stages=genotype.space.num_inputs)
    # The genotype reads P feature maps, shallow to deep: give it your encoder's, in that order.
    aux = AuxiliaryModules(
        genotype,
        feature_channels=net.encoder.channels,
        task_channels={t: TASK_CHANNELS[t] for t in tasks},
        aux_channels=args.aux_channels,
    )
    print(f"genotype: {genotype.summary()}")
    print(f"training: network {count_parameters(net)} parameters + auxiliary modules {count_parameters(aux)}")

    train_images, train_targets = Scenes(args.size, seed=args.seed).batch(args.train_images)
    held_out_images, held_out_targets = Scenes(args.size, seed=args.seed + 1).batch(64)
    data = batches(train_images, train_targets, args.batch_size, seed=args.seed)
    optimizer = torch.optim.Adam([*net.parameters(), *aux.parameters()], lr=2e-3)
    start = time.perf_counter()
    net.train()
    aux.train()
    for step in range(1, args.steps + 1):
        images, targets = next(data)
        outputs, features = net(images)
        aux_outputs = aux(features, output_size=images.shape[-2:])
        main_loss = sum(task_loss(t, outputs[t], targets[t]) for t in tasks)
        aux_loss = sum(task_loss(t, aux_outputs[t], targets[t]) for t in tasks)
        loss = main_loss + args.aux_weight * aux_loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step == 1 or step % 50 == 0 or step == args.steps:
            print(f"step {step:4d}  main loss {main_loss.item():.3f}  aux loss {aux_loss.item():.3f}")
    print(f"trained {args.steps} steps in {time.perf_counter() - start:.1f} s")

    # Inference: the auxiliary modules are not part of the deployed network. Drop them.
    del aux, optimizer
    net.eval()
    with torch.no_grad():
        outputs, _ = net(held_out_images)
    print(f"held-out scenes: {describe(metrics(outputs, held_out_targets))}")
    if args.save:
        torch.save(net.state_dict(), args.save)
        print(f"saved the deployable network to {args.save}")

    plain = MultiTaskNet(tasks, num_stages=genotype.space.num_inputs)  # never saw auxiliary modules
    deployed, without_aux = count_parameters(net), count_parameters(plain)
    assert deployed == without_aux, (deployed, without_aux)
    assert net.state_dict().keys() == plain.state_dict().keys()
    print(f"inference network: {deployed} parameters == network without auxiliary modules: {without_aux}")


if __name__ == "__main__":
    main()
