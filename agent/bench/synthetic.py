"""`fpagent bench synthetic`: speed and realism of the synthetic fingerprint generator.

Speed: time per master finger (target < 0.5 s) and per impression (target
< 0.1 s), wall and CPU. Realism, judged by NIST NBIS (mindtct + bozorth3, a
bench extra): minutiae per image, genuine scores (all impression pairs of a
finger) and impostor scores (all pairs of different fingers), next to the
same figures for real optical-sensor prints (FVC2002 DB1_B, centre-cropped
to the same size) in the same run. Real prints give about 30-80 minutiae,
genuine scores mostly above 40 and impostor scores mostly below 20.
"""

from __future__ import annotations

import itertools
import os
import pathlib

import numpy as np

from fpagent.bench import Stopwatch, add_json_flag, emit, image_size, progress

MASTER_TARGET_S = 0.5
IMPRESSION_TARGET_S = 0.1


def register(sub):
    parser = sub.add_parser(
        "synthetic", help="synthetic fingerprint generator: speed, and NBIS genuine/impostor scores",
        description=__doc__.split("\n\n")[1])
    parser.add_argument("--fingers", type=int, default=10, metavar="N", help="fingers (default 10)")
    parser.add_argument("--impressions", type=int, default=4, metavar="N",
                        help="impressions per finger (default 4)")
    parser.add_argument("--seed", type=int, default=0, help="generator seed (default 0)")
    parser.add_argument("--size", default="256x288", metavar="WxH", help="image size (default 256x288)")
    parser.add_argument("--real", metavar="DIR",
                        help="folder of real NNN_I.png prints for the reference (default: the shared "
                        "fvc2002_db1_b under $FPAGENT_FINGERPRINTS or ../shared/data/fingerprints)")
    parser.add_argument("--no-nbis", action="store_true", help="speed only")
    add_json_flag(parser)
    parser.set_defaults(func=run)


def _default_real() -> pathlib.Path | None:
    env = os.environ.get("FPAGENT_FINGERPRINTS")
    root = pathlib.Path(env) if env else (
        pathlib.Path(__file__).resolve().parents[2].parent / "shared" / "data" / "fingerprints")
    folder = root / "fvc2002_db1_b"
    return folder if folder.is_dir() else None


def _centre_crop(pixels: np.ndarray, rows: int, cols: int) -> np.ndarray:
    h, w = pixels.shape
    if h < rows or w < cols:  # pad with the light background
        out = np.full((max(h, rows), max(w, cols)), 255, np.uint8)
        out[:h, :w] = pixels
        pixels, h, w = out, out.shape[0], out.shape[1]
    r0, c0 = (h - rows) // 2, (w - cols) // 2
    return pixels[r0:r0 + rows, c0:c0 + cols]


def nbis_figures(images: dict) -> dict:
    """mindtct + bozorth3 over {(finger, impression): pixels}."""
    from fpagent.devtools import nbis as nbis_ref

    keys = sorted(images)
    minutiae = {}
    for done, key in enumerate(keys):
        progress("mindtct", done, len(keys))
        minutiae[key] = nbis_ref.extract(images[key])
    progress("mindtct", len(keys), len(keys))
    counts = np.array([len(m.get()) for m in minutiae.values()])
    genuine, impostor = [], []
    for a, b in itertools.combinations(keys, 2):
        score = nbis_ref.bozorth3(minutiae[a], minutiae[b])
        (genuine if a[0] == b[0] else impostor).append(score)
    genuine, impostor = np.array(genuine), np.array(impostor)
    return {
        "images": len(keys),
        "minutiae_median": float(np.median(counts)),
        "minutiae_min": int(counts.min()),
        "minutiae_max": int(counts.max()),
        "genuine_pairs": len(genuine),
        "genuine_median": float(np.median(genuine)) if len(genuine) else None,
        "genuine_p10": float(np.percentile(genuine, 10)) if len(genuine) else None,
        "genuine_over_40": float(np.mean(genuine > 40)) if len(genuine) else None,
        "impostor_pairs": len(impostor),
        "impostor_median": float(np.median(impostor)) if len(impostor) else None,
        "impostor_p90": float(np.percentile(impostor, 90)) if len(impostor) else None,
        "impostor_under_20": float(np.mean(impostor < 20)) if len(impostor) else None,
        "impostor_max": int(impostor.max()) if len(impostor) else None,
    }


def _line(label: str, f: dict) -> str:
    return (f"{label:<14} minutiae median {f['minutiae_median']:.0f} ({f['minutiae_min']}-{f['minutiae_max']})"
            f" | genuine ({f['genuine_pairs']}) median {f['genuine_median']:.0f}, p10 {f['genuine_p10']:.0f},"
            f" >40 {100 * f['genuine_over_40']:.0f}%"
            f" | impostor ({f['impostor_pairs']}) median {f['impostor_median']:.0f},"
            f" p90 {f['impostor_p90']:.0f}, <20 {100 * f['impostor_under_20']:.0f}%")


def run(args) -> int:
    from fpagent.errors import UserError
    from fpagent.drivers.synthetic import generator

    if args.fingers < 2 or args.impressions < 2:
        raise UserError("--fingers and --impressions must be at least 2 (pairs are compared)")
    rows, cols = image_size(args.size)
    generator.master_finger(10_000, 1, args.seed)  # warm the Gabor bank cache (per canvas, once)
    master_wall, master_cpu, imp_wall, imp_cpu, images, patterns = [], [], [], [], {}, []
    for f in range(args.fingers):
        progress("generate", f, args.fingers)
        with Stopwatch() as sw:  # fingers 1..10 of persons 0, 1, ...: all positions appear
            master = generator.master_finger(f // 10, 1 + f % 10, args.seed)
        master_wall.append(sw.wall)
        master_cpu.append(sw.cpu)
        patterns.append(master.pattern)
        for i in range(args.impressions):
            with Stopwatch() as sw:
                images[f, i] = generator.impression_of(master, i, (rows, cols))
            imp_wall.append(sw.wall)
            imp_cpu.append(sw.cpu)
    progress("generate", args.fingers, args.fingers)
    result = {
        "fingers": args.fingers, "impressions": args.impressions, "seed": args.seed,
        "width": cols, "height": rows,
        "master_s_median": float(np.median(master_wall)), "master_cpu_s_median": float(np.median(master_cpu)),
        "master_s_max": float(np.max(master_wall)),
        "impression_s_median": float(np.median(imp_wall)),
        "impression_cpu_s_median": float(np.median(imp_cpu)),
        "impression_s_max": float(np.max(imp_wall)),
        "patterns": {p: patterns.count(p) for p in sorted(set(patterns))},
    }
    print(f"synthetic prints: {args.fingers} fingers x {args.impressions} impressions, seed {args.seed}, "
          f"{cols}x{rows} px at 500 ppi; patterns {result['patterns']}")
    print(f"master finger: median {result['master_s_median']:.3f} s (CPU {result['master_cpu_s_median']:.3f} s), "
          f"max {result['master_s_max']:.3f} s   target < {MASTER_TARGET_S} s")
    print(f"impression:    median {result['impression_s_median']:.4f} s (CPU "
          f"{result['impression_cpu_s_median']:.4f} s), max {result['impression_s_max']:.4f} s   "
          f"target < {IMPRESSION_TARGET_S} s")

    if not args.no_nbis:
        from fpagent.devtools import nbis as nbis_ref

        if not nbis_ref.available():
            print(f"{nbis_ref.unavailable_reason()}: realism figures skipped")
        else:
            result["nbis"] = nbis_figures(images)
            print(_line("synthetic", result["nbis"]))
            real = pathlib.Path(args.real) if args.real else _default_real()
            if real is None or not real.is_dir():
                print("real reference skipped: no folder of real prints (give --real DIR)")
            else:
                from PIL import Image

                ref = {}
                for f in range(min(args.fingers, 10)):
                    for i in range(args.impressions):
                        path = real / f"{101 + f}_{i + 1}.png"
                        if path.exists():
                            with Image.open(path) as im:
                                ref[f, i] = _centre_crop(np.asarray(im.convert("L")), rows, cols)
                if len({k[0] for k in ref}) >= 2:
                    result["nbis_real"] = nbis_figures(ref)
                    result["real_folder"] = real.name
                    print(_line(real.name, result["nbis_real"]) + "  (real, same window)")
                    s, r = result["nbis"], result["nbis_real"]
                    print(f"ratios synthetic/real: impostor median "
                          f"{s['impostor_median'] / max(r['impostor_median'], 1):.2f}, genuine median "
                          f"{s['genuine_median'] / max(r['genuine_median'], 1):.2f}")
                else:
                    print(f"real reference skipped: no NNN_I.png prints in {real}")
    emit(result, args.json)
    return 0
