"""`fpagent bench segmentation`: slap segmentation against the truth.

Two sets of slaps. The ten-print emulator's (fpagent.drivers.tenprint.platen):
right, left and thumb slaps of emulated persons, each finger's box known from
the generator. And real prints composed into slaps: four prints of four
DIFFERENT FVC fingers (different people) placed on a blank platen as one
synthetic hand, each print's truth box being its foreground as the quality
analysis sees it, turned by the angle it was placed at; four impressions of
one FVC finger would not be four fingers of a hand, so this is a hand made of
strangers' fingers, a test of the segmenter on real skin, not of real hands.

Figures per finger: centre error (px), angle error (degrees), IoU of the boxes,
whether the finger number is right; per slap: all fingers found, time.
"""

from __future__ import annotations

import pathlib
import time

import numpy as np

from fpagent.bench import add_json_flag, emit, progress

# The biometrics (numba kernels) are imported when a benchmark runs, not when
# the command line starts: the service sets numba's cache first.

PLATEN = (1500, 1600)


def box_iou(a, b, step: float = 2.0) -> float:
    """Intersection over union of two turned boxes ((cx, cy), (w, h), angle_deg), by sampling."""
    reach = 0.5 * max(np.hypot(*a[1]), np.hypot(*b[1])) + step
    cx = 0.5 * (a[0][0] + b[0][0])
    cy = 0.5 * (a[0][1] + b[0][1])
    span = reach + 0.5 * np.hypot(a[0][0] - b[0][0], a[0][1] - b[0][1])
    y, x = np.mgrid[cy - span:cy + span:step, cx - span:cx + span:step]
    inside = [_inside(box, x, y) for box in (a, b)]
    union = np.count_nonzero(inside[0] | inside[1])
    return float(np.count_nonzero(inside[0] & inside[1]) / union) if union else 0.0


def _inside(box, x, y):
    (cx, cy), (w, h), angle = box
    t = np.deg2rad(angle)
    u = (x - cx) * np.cos(t) + (y - cy) * np.sin(t)
    v = -(x - cx) * np.sin(t) + (y - cy) * np.cos(t)
    return (np.abs(u) <= w / 2) & (np.abs(v) <= h / 2)


def score_slap(truth, result) -> list[dict]:
    """Each true finger against the found segment nearest to it."""
    rows = []
    for box in truth:
        if not result.segments:
            rows.append(dict(found=False))
            continue
        seg = min(result.segments, key=lambda s: np.hypot(s.center[0] - box.center[0],
                                                          s.center[1] - box.center[1]))
        err = float(np.hypot(seg.center[0] - box.center[0], seg.center[1] - box.center[1]))
        iou = box_iou((box.center, box.size, box.angle), (seg.center, seg.size, seg.angle))
        rows.append(dict(found=iou > 0.3, centre_px=err, angle_deg=abs(seg.angle - box.angle),
                         iou=iou, number_ok=seg.finger == box.finger, quality=seg.quality.score))
    return rows


def summarise(rows: list[dict], slaps: int, complete: int, seconds: list[float]) -> dict:
    found = [r for r in rows if r["found"]]

    def pct(key, q):
        return float(np.percentile([r[key] for r in found], q)) if found else float("nan")

    return dict(
        slaps=slaps, fingers=len(rows), complete_share=complete / max(slaps, 1),
        found_share=len(found) / max(len(rows), 1),
        number_accuracy=float(np.mean([r["number_ok"] for r in found])) if found else 0.0,
        centre_px_median=pct("centre_px", 50), centre_px_p90=pct("centre_px", 90),
        angle_deg_median=pct("angle_deg", 50), angle_deg_p90=pct("angle_deg", 90),
        iou_median=pct("iou", 50), iou_p10=pct("iou", 10),
        quality_median=pct("quality", 50),
        seconds_per_slap_median=float(np.median(seconds)) if seconds else float("nan"),
    )


def bench_emulated(persons: int, seed: int) -> dict:
    from fpagent.biometrics import segmentation  # noqa: PLC0415
    from fpagent.drivers.tenprint import platen  # noqa: PLC0415 - a driver benchmark measures a driver

    rows, seconds, complete, slaps = [], [], 0, 0
    total = persons * 3
    for person in range(persons):
        for position in (platen.RIGHT_SLAP, platen.LEFT_SLAP, platen.THUMBS_SLAP):
            progress("emulated slaps", slaps, total)
            slap = platen.slap(seed, person, position)
            t0 = time.perf_counter()
            result = segmentation.segment_slap(slap.pixels, platen.SLAP_FINGERS[position])
            seconds.append(time.perf_counter() - t0)
            complete += result.complete
            slaps += 1
            rows.extend(score_slap(slap.fingers, result))
    progress("emulated slaps", slaps, total)
    return summarise(rows, slaps, complete, seconds)


class _Box:
    def __init__(self, finger, center, size, angle):
        self.finger, self.center, self.size, self.angle = finger, center, size, angle


def compose_real_slap(prints: list[np.ndarray], rng: np.random.Generator):
    """Four real prints of different fingers placed as a right hand; returns (pixels, truth boxes)."""
    from fpagent.biometrics.extraction import assess_quality  # noqa: PLC0415

    glass = float(np.median([np.percentile(p, 95) for p in prints]))
    canvas = np.full(PLATEN, glass, np.float32) + rng.normal(0, 3, PLATEN).astype(np.float32)
    hand = rng.normal(0.0, 6.0)
    boxes = []
    for k, pixels in enumerate(prints):
        report = assess_quality(pixels)
        fg = np.repeat(np.repeat(report.foreground, report.block_size, 0), report.block_size, 1)
        fg = fg[: pixels.shape[0], : pixels.shape[1]]
        if not fg.any():
            fg = np.ones(pixels.shape, bool)
        rows, cols = np.flatnonzero(fg.any(1)), np.flatnonzero(fg.any(0))
        angle = hand + (-8, -1, 5, 11)[k] + rng.normal(0, 3)
        centre = (300 + 340 * k + rng.normal(0, 15), (520, 420, 470, 700)[k] + rng.normal(0, 30))
        # the print's own centre of foreground, and the place it lands
        pu = (cols[0] + cols[-1]) / 2 - (pixels.shape[1] - 1) / 2
        pv = (rows[0] + rows[-1]) / 2 - (pixels.shape[0] - 1) / 2
        _paste(canvas, pixels.astype(np.float32), fg, centre, angle)
        t = np.deg2rad(angle)
        box_centre = (centre[0] + pu * np.cos(t) - pv * np.sin(t), centre[1] + pu * np.sin(t) + pv * np.cos(t))
        boxes.append(_Box(2 + k, box_centre, (float(cols[-1] - cols[0] + 1), float(rows[-1] - rows[0] + 1)), angle))
    return np.clip(np.rint(canvas), 0, 255).astype(np.uint8), boxes


def _paste(canvas, pixels, fg, centre, angle):
    h, w = pixels.shape
    reach = int(0.5 * np.hypot(h, w)) + 2
    x0, y0 = int(centre[0]) - reach, int(centre[1]) - reach
    y, x = np.mgrid[y0:y0 + 2 * reach, x0:x0 + 2 * reach]
    t = np.deg2rad(angle)
    u = np.rint((x - centre[0]) * np.cos(t) + (y - centre[1]) * np.sin(t) + (w - 1) / 2).astype(int)
    v = np.rint(-(x - centre[0]) * np.sin(t) + (y - centre[1]) * np.cos(t) + (h - 1) / 2).astype(int)
    ok = (u >= 0) & (v >= 0) & (u < w) & (v < h) & (x >= 0) & (y >= 0) & (x < canvas.shape[1]) & (y < canvas.shape[0])
    ok[ok] = fg[v[ok], u[ok]]
    canvas[y[ok], x[ok]] = pixels[v[ok], u[ok]]


def bench_real(folder: pathlib.Path, slaps: int, seed: int) -> dict:
    from PIL import Image  # noqa: PLC0415

    from fpagent.biometrics import segmentation  # noqa: PLC0415

    files = sorted(folder.glob("*.png"))
    by_finger: dict[str, list[pathlib.Path]] = {}
    for f in files:
        by_finger.setdefault(f.stem.split("_")[0], []).append(f)
    fingers = sorted(by_finger)
    if len(fingers) < 4:
        return dict(slaps=0, note=f"fewer than four fingers in {folder}")
    rng = np.random.default_rng(seed)
    rows, seconds, complete = [], [], 0
    for n in range(slaps):
        progress(f"real slaps ({folder.name})", n, slaps)
        chosen = rng.choice(len(fingers), size=4, replace=False)
        prints = [np.asarray(Image.open(rng.choice(by_finger[fingers[i]])).convert("L")) for i in chosen]
        pixels, truth = compose_real_slap(prints, rng)
        t0 = time.perf_counter()
        result = segmentation.segment_slap(pixels, (2, 3, 4, 5))
        seconds.append(time.perf_counter() - t0)
        complete += result.complete
        rows.extend(score_slap(truth, result))
    progress(f"real slaps ({folder.name})", slaps, slaps)
    return summarise(rows, slaps, complete, seconds)


def _print(name: str, s: dict) -> None:
    if not s.get("slaps"):
        print(f"{name}: {s.get('note', 'nothing measured')}")
        return
    print(f"{name}: {s['slaps']} slaps, {s['fingers']} fingers; all found in {100 * s['complete_share']:.0f}% "
          f"of slaps, {100 * s['found_share']:.0f}% of fingers; finger numbers right "
          f"{100 * s['number_accuracy']:.1f}%")
    print(f"  centre error median {s['centre_px_median']:.1f} px (p90 {s['centre_px_p90']:.1f}); "
          f"angle error median {s['angle_deg_median']:.1f} deg (p90 {s['angle_deg_p90']:.1f}); "
          f"IoU median {s['iou_median']:.2f} (p10 {s['iou_p10']:.2f}); segment quality median "
          f"{s['quality_median']:.0f}; {1000 * s['seconds_per_slap_median']:.0f} ms per slap")


def run(args) -> int:
    result = dict(emulated=bench_emulated(args.persons, args.seed))
    _print("emulated slaps", result["emulated"])
    for folder in args.real:
        key = f"real_{pathlib.Path(folder).name}"
        result[key] = bench_real(pathlib.Path(folder), args.real_slaps, args.seed)
        _print(f"real prints composed into slaps ({pathlib.Path(folder).name}, four different "
               "people's fingers as one hand)", result[key])
    emit(result, args.json)
    return 0


def register(sub):
    p = sub.add_parser("segmentation", help="slap segmentation against the truth (emulated and real prints)",
                       description=__doc__.split("\n\n")[1])
    p.add_argument("--persons", type=int, default=10, help="emulated persons (3 slaps each)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--real", nargs="*", default=[], metavar="DIR",
                   help="folders of real prints (one finger per NNN_ prefix) to compose into slaps")
    p.add_argument("--real-slaps", type=int, default=30, help="composed slaps per real folder")
    add_json_flag(p)
    p.set_defaults(func=run)
