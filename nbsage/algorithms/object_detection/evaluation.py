"""validation:mAP — VOC07 11-point mean average precision at overlap_threshold — and COCO-style AP.

As MXNet's SSD example (`VOC07MApMetric`, the SageMaker algorithm's lineage): per class, all
detections of the validation images sorted by score; a detection is a true positive when its
IoU with a not yet matched ground-truth box of its class reaches the threshold; precision is
interpolated at recall 0, 0.1, ..., 1 and averaged; the mean is over the classes that have
ground truth. COCO-style AP averages the all-point (101-point) AP over IoU 0.50:0.05:0.95.
"""
from __future__ import annotations

import numpy as np


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    lt = np.maximum(box[:2], boxes[:, :2])
    rb = np.minimum(box[2:], boxes[:, 2:])
    inter = np.clip(rb - lt, 0, None).prod(1)
    union = (box[2:] - box[:2]).prod() + (boxes[:, 2:] - boxes[:, :2]).prod(1) - inter
    return inter / np.maximum(union, 1e-12)


def _precision_recall(detections: list[np.ndarray], truths: list[np.ndarray], cls: int, threshold: float):
    """(precision, recall) curves of one class, or None when it has no ground truth."""
    gts = [t[t[:, 0] == cls, 1:5] for t in truths]
    total = sum(len(g) for g in gts)
    if total == 0:
        return None
    rows = [(d[1], i, d[2:6]) for i, dets in enumerate(detections) for d in dets if int(d[0]) == cls]
    rows.sort(key=lambda r: -r[0])
    used = [np.zeros(len(g), dtype=bool) for g in gts]
    tp = np.zeros(len(rows))
    for k, (_, i, box) in enumerate(rows):
        if len(gts[i]) == 0:
            continue
        overlaps = _iou(box, gts[i])
        j = int(overlaps.argmax())
        if overlaps[j] >= threshold and not used[i][j]:
            used[i][j] = True
            tp[k] = 1
    ctp = np.cumsum(tp)
    recall = ctp / total
    precision = ctp / np.arange(1, len(rows) + 1) if rows else np.zeros(0)
    return precision, recall


def voc07_ap(precision: np.ndarray, recall: np.ndarray) -> float:
    return float(np.mean([precision[recall >= t].max() if (recall >= t).any() else 0.0
                          for t in np.arange(0.0, 1.1, 0.1)]))


def coco_ap(precision: np.ndarray, recall: np.ndarray) -> float:
    if len(precision) == 0:
        return 0.0
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    points = np.linspace(0, 1, 101)
    idx = np.searchsorted(recall, points, side="left")
    return float(np.mean([envelope[i] if i < len(envelope) else 0.0 for i in idx]))


def mean_ap(detections: list[np.ndarray], truths: list[np.ndarray], num_classes: int, threshold: float) -> float:
    """VOC07 11-point mAP; detections rows [class, score, xmin, ymin, xmax, ymax], truths rows [class, box]."""
    aps = [voc07_ap(*pr) for c in range(num_classes)
           if (pr := _precision_recall(detections, truths, c, threshold)) is not None]
    return float(np.mean(aps)) if aps else 0.0


def coco_mean_ap(detections: list[np.ndarray], truths: list[np.ndarray], num_classes: int) -> float:
    """AP averaged over classes and IoU 0.50, 0.55, ..., 0.95 (all-point, 101 recall points)."""
    values = []
    for threshold in np.arange(0.5, 0.96, 0.05):
        aps = [coco_ap(*pr) for c in range(num_classes)
               if (pr := _precision_recall(detections, truths, c, float(threshold))) is not None]
        if aps:
            values.append(np.mean(aps))
    return float(np.mean(values)) if values else 0.0
