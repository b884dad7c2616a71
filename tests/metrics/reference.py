"""Brute-force reference implementations the metrics are tested against (numpy + skimage only).

Written independently of ``src.metrics``: ROC/PR curves from sorting (sklearn's tie handling: one
curve point per distinct score), PRO by looping over ground-truth regions labelled with skimage,
and a literal transcription of the public AnomalyCLIP / cflow-ad AUPRO.
"""

import numpy as np
from skimage import measure


def _curve_points(scores, labels):
    """(fps, tps) at each distinct threshold, descending, as sklearn's _binary_clf_curve."""
    scores = np.asarray(scores, dtype=np.float64).ravel()
    labels = np.asarray(labels).ravel().astype(np.float64)
    order = np.argsort(scores, kind="mergesort")[::-1]
    s, y = scores[order], labels[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(s)), y.size - 1]
    tps = np.cumsum(y)[last_of_tie]
    fps = (1 + last_of_tie) - tps
    return fps, tps


def roc_auc(scores, labels):
    fps, tps = _curve_points(scores, labels)
    if fps[-1] == 0 or tps[-1] == 0:
        return float("nan")
    fpr = np.r_[0, fps / fps[-1]]
    tpr = np.r_[0, tps / tps[-1]]
    return float(np.trapezoid(tpr, fpr))


def average_precision(scores, labels):
    fps, tps = _curve_points(scores, labels)
    if tps[-1] == 0:
        return float("nan")
    precision = tps / (tps + fps)
    recall = tps / tps[-1]
    return float(np.sum(np.diff(np.r_[0, recall]) * precision))


def f1_max(scores, labels):
    fps, tps = _curve_points(scores, labels)
    if tps[-1] == 0:
        return float("nan")
    precision = tps / (tps + fps)
    recall = tps / tps[-1]
    f1 = np.where(precision + recall > 0, 2 * precision * recall / np.maximum(precision + recall, 1e-300), 0)
    return float(f1.max())


def regions(masks):
    """Every 8-connected ground-truth region as (image index, bool mask of the region)."""
    out = []
    for i, m in enumerate(masks):
        labelled = measure.label(m.astype(np.uint8))  # default: full (8-) connectivity
        for r in range(1, labelled.max() + 1):
            out.append((i, labelled == r))
    return out


def aupro_exact(maps, masks, max_fpr=0.3):
    """Per-region overlap curve at every distinct score (>= threshold), integrated to max_fpr / max_fpr."""
    maps = np.asarray(maps, dtype=np.float64)
    masks = np.asarray(masks).astype(bool)
    regs = regions(masks)
    normal = np.sort(maps[~masks])
    if not regs or normal.size == 0:
        return float("nan")
    thresholds = np.unique(maps)[::-1]
    fpr = (normal.size - np.searchsorted(normal, thresholds, side="left")) / normal.size
    pro = np.zeros_like(thresholds)
    for i, region in regs:
        values = np.sort(maps[i][region])
        pro += (values.size - np.searchsorted(values, thresholds, side="left")) / values.size
    pro /= len(regs)
    xs, ys = [0.0], [0.0]
    for x, y in zip(fpr, pro):
        if x >= max_fpr:
            x0, y0 = xs[-1], ys[-1]
            ys.append(y0 + (y - y0) * (max_fpr - x0) / (x - x0) if x > x0 else y)
            xs.append(max_fpr)
            break
        xs.append(x)
        ys.append(y)
    return float(np.trapezoid(ys, xs) / max_fpr)


def aupro_anomalyclip(masks, amaps, max_step=200, expect_fpr=0.3):
    """The public cal_pro_score (cflow-ad / AnomalyCLIP / FB-CLIP), transcribed step by step."""
    masks = np.asarray(masks).astype(np.uint8)
    amaps = np.asarray(amaps, dtype=np.float32)
    binary_amaps = np.zeros_like(amaps, dtype=bool)
    min_th, max_th = amaps.min(), amaps.max()
    delta = (max_th - min_th) / max_step
    pros, fprs = [], []
    for th in np.arange(min_th, max_th, delta):
        binary_amaps[amaps <= th], binary_amaps[amaps > th] = 0, 1
        pro = []
        for binary_amap, mask in zip(binary_amaps, masks):
            for region in measure.regionprops(measure.label(mask)):
                tp_pixels = binary_amap[region.coords[:, 0], region.coords[:, 1]].sum()
                pro.append(tp_pixels / region.area)
        inverse_masks = 1 - masks
        fp_pixels = np.logical_and(inverse_masks, binary_amaps).sum()
        fpr = fp_pixels / inverse_masks.sum()
        pros.append(np.array(pro).mean())
        fprs.append(fpr)
    pros, fprs = np.array(pros), np.array(fprs)
    idxes = fprs < expect_fpr
    fprs = fprs[idxes]
    fprs = (fprs - fprs.min()) / (fprs.max() - fprs.min())
    pros = pros[idxes]
    # sklearn.metrics.auc: FPRs fall as the threshold rises, so the area is -trapezoid.
    return float(-np.trapezoid(pros, fprs))
