"""Boxes: default (anchor) boxes, IoU, SSD's box coding, matching and non-maximum suppression.

Plain torch ops (torchvision's detection ops do not load beside the pinned CPU torch build).
Boxes are (xmin, ymin, xmax, ymax) normalised to [0, 1]. Default boxes are SSD's: per feature map
of side f_k, one box per cell centre and aspect ratio, scale s_k (0.1 for the first map, then
evenly from 0.2 to 0.9) at ratios 1, 2, 1/2 (and 3, 1/3 on the middle maps) plus one of scale
sqrt(s_k s_k+1) at ratio 1. Coding is SSD's with variances (0.1, 0.1, 0.2, 0.2) — torchvision's
BoxCoder weights (10, 10, 5, 5).
"""
from __future__ import annotations

import math

import numpy as np
import torch

VARIANCES = (0.1, 0.2)


def scales(num_maps: int) -> list[float]:
    """s_1 .. s_m+1. Six maps or more (SSD300, SSD512): 0.1 for the first, then evenly 0.2 .. 0.9;
    fewer (small inputs): evenly 0.15 .. 0.9, so the few maps still cover small to whole-image objects."""
    if num_maps < 6:
        return [0.15 + 0.75 * k / max(num_maps - 1, 1) for k in range(num_maps)] + [1.05]
    rest = [0.2 + 0.7 * k / (num_maps - 2) for k in range(num_maps - 1)]
    return [0.1, *rest, 1.05]


def aspect_ratios(num_maps: int) -> list[tuple[float, ...]]:
    """(2,) on the first and the last two maps, (2, 3) on the others, as SSD300."""
    return [(2.0,) if k == 0 or k >= num_maps - 2 else (2.0, 3.0) for k in range(num_maps)]


def boxes_per_cell(num_maps: int) -> list[int]:
    return [2 + 2 * len(r) for r in aspect_ratios(num_maps)]


def default_boxes(feature_sizes: list[int]) -> torch.Tensor:
    """(A, 4) default boxes in (cx, cy, w, h), in the order the heads emit them (map, row, col, box)."""
    m = len(feature_sizes)
    s = scales(m)
    out = []
    for k, f in enumerate(feature_sizes):
        shapes = [(s[k], s[k]), (math.sqrt(s[k] * s[k + 1]),) * 2]
        for r in aspect_ratios(m)[k]:
            q = math.sqrt(r)
            shapes += [(s[k] * q, s[k] / q), (s[k] / q, s[k] * q)]
        centres = (np.arange(f) + 0.5) / f
        cy, cx = np.meshgrid(centres, centres, indexing="ij")
        for y, x in zip(cy.ravel(), cx.ravel()):
            for w, h in shapes:
                out.append((x, y, w, h))
    boxes = torch.tensor(out, dtype=torch.float32)
    return torch.cat([boxes[:, :2], boxes[:, 2:].clamp(max=1.0)], dim=1)


def to_corners(cxcywh: torch.Tensor) -> torch.Tensor:
    return torch.cat([cxcywh[..., :2] - cxcywh[..., 2:] / 2, cxcywh[..., :2] + cxcywh[..., 2:] / 2], dim=-1)


def to_centres(xyxy: torch.Tensor) -> torch.Tensor:
    return torch.cat([(xyxy[..., :2] + xyxy[..., 2:]) / 2, xyxy[..., 2:] - xyxy[..., :2]], dim=-1)


def iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU of corner boxes a (..., N, 4) and b (..., M, 4): (..., N, M)."""
    lt = torch.maximum(a[..., :, None, :2], b[..., None, :, :2])
    rb = torch.minimum(a[..., :, None, 2:], b[..., None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    area_a = (a[..., 2:] - a[..., :2]).clamp(min=0).prod(-1)
    area_b = (b[..., 2:] - b[..., :2]).clamp(min=0).prod(-1)
    return inter / (area_a[..., :, None] + area_b[..., None, :] - inter).clamp(min=1e-12)


def encode(matched: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
    """Corner boxes matched to anchors (cx, cy, w, h) -> regression targets."""
    c = to_centres(matched)
    xy = (c[..., :2] - anchors[..., :2]) / (VARIANCES[0] * anchors[..., 2:])
    wh = torch.log(c[..., 2:].clamp(min=1e-6) / anchors[..., 2:]) / VARIANCES[1]
    return torch.cat([xy, wh], dim=-1)


def decode(deltas: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
    """Regression outputs -> corner boxes."""
    xy = anchors[..., :2] + deltas[..., :2] * VARIANCES[0] * anchors[..., 2:]
    wh = anchors[..., 2:] * torch.exp((deltas[..., 2:] * VARIANCES[1]).clamp(max=math.log(1000.0 / 16)))
    return to_corners(torch.cat([xy, wh], dim=-1))


def match(gt: torch.Tensor, anchors_xyxy: torch.Tensor, threshold: float = 0.5) -> tuple[torch.Tensor, torch.Tensor]:
    """Match a batch's ground truth to the default boxes.

    gt: (B, G, 5) rows [class, xmin, ymin, xmax, ymax], class -1 for padding. Returns (labels (B, A):
    0 background or class + 1, matched corner boxes (B, A, 4)). Each anchor takes the ground truth
    it overlaps most when the IoU reaches `threshold`; each ground-truth box also takes the anchor
    that overlaps it most, whatever the IoU (SSD's bipartite step), so no object goes unmatched.
    """
    B, G, _ = gt.shape
    A = anchors_xyxy.shape[0]
    if G == 0:
        return torch.zeros(B, A, dtype=torch.long, device=gt.device), torch.zeros(B, A, 4, device=gt.device)
    valid = gt[..., 0] >= 0                                        # (B, G)
    overlaps = iou(gt[..., 1:], anchors_xyxy)                      # (B, G, A)
    overlaps = torch.where(valid[..., None], overlaps, torch.full_like(overlaps, -1.0))
    best_iou, best_gt = overlaps.max(dim=1)                        # (B, A)
    best_anchor = overlaps.argmax(dim=2)                           # (B, G)
    b_idx = torch.arange(B, device=gt.device)[:, None].expand(B, G)[valid]
    g_idx = torch.arange(G, device=gt.device)[None, :].expand(B, G)[valid]
    a_idx = best_anchor[valid]
    best_gt[b_idx, a_idx] = g_idx
    best_iou[b_idx, a_idx] = 2.0
    matched = torch.gather(gt, 1, best_gt[..., None].expand(B, A, 5))
    labels = torch.where(best_iou >= threshold, matched[..., 0].long() + 1, torch.zeros_like(best_gt))
    return labels, matched[..., 1:]


def nms(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> np.ndarray:
    """Greedy non-maximum suppression: indices kept, by descending score."""
    order = np.argsort(-scores, kind="stable")
    boxes = boxes[order]
    overlaps = iou(torch.from_numpy(boxes), torch.from_numpy(boxes)).numpy()
    suppressed = np.zeros(len(order), dtype=bool)
    keep = []
    for i in range(len(order)):
        if suppressed[i]:
            continue
        keep.append(i)
        suppressed |= overlaps[i] > threshold
    return order[np.asarray(keep, dtype=np.int64)]


def detect(scores: torch.Tensor, deltas: torch.Tensor, anchors: torch.Tensor, nms_threshold: float,
           score_threshold: float = 0.01, top_k: int = 400, max_detections: int = 200) -> list[np.ndarray]:
    """Per image, rows [class_id, score, xmin, ymin, xmax, ymax] (normalised, clipped), best first.

    scores (B, A, C+1) softmax probabilities with background at 0; NMS per class (boxes of
    different classes never suppress each other).
    """
    boxes = decode(deltas, anchors).clamp(0.0, 1.0)
    out = []
    for b in range(scores.shape[0]):
        probs = scores[b, :, 1:]                                   # (A, C)
        flat = probs.reshape(-1)
        keep = torch.nonzero(flat > score_threshold).squeeze(1)
        if keep.numel() > top_k:
            keep = keep[flat[keep].topk(top_k).indices]
        cls = (keep % probs.shape[1]).numpy()
        anchor = (keep // probs.shape[1]).numpy()
        s = flat[keep].numpy()
        bx = boxes[b][anchor].numpy()
        if len(s) == 0:
            out.append(np.zeros((0, 6), dtype=np.float32))
            continue
        kept = nms(bx + cls[:, None] * 2.0, s, nms_threshold)[:max_detections]  # offset: classes apart
        out.append(np.concatenate([cls[kept, None].astype(np.float32), s[kept, None], bx[kept]], axis=1))
    return out
