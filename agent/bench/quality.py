"""`fpagent bench quality DIR...`: does our quality score rank prints like NIST NFIQ 2?

For every image of each folder it computes our score (fpagent.biometrics.quality, through
extraction so the minutiae count is part of it) and NFIQ 2 (NBIS, the bench
extra `nbis-py`), and prints the Spearman rank correlation per folder, each
marked tuning or validation (fpagent.bench.splits). Never pooled: pooling
sets of different sensors rewards telling the sensors apart, not ranking the
prints, and inflates the figure. The quality weights were fitted on the
tuning split; the validation figures are the out-of-sample ones. The target
is >= 0.7 on every set. `nfiq2_correlation(paths)` is the same figure for
other benchmarks (`fpagent bench accuracy`).
"""

from __future__ import annotations

import pathlib

import numpy as np

from fpagent.bench import add_json_flag, emit, progress
from fpagent.errors import UserError

IMAGE_SUFFIXES = (".png", ".bmp", ".tif", ".tiff", ".pgm", ".jpg", ".jpeg")


def spearman(a, b) -> float:
    """Spearman rank correlation (average ranks for ties)."""
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    if len(a) < 3:
        return float("nan")

    def ranks(v):
        order = np.argsort(v, kind="stable")
        r = np.empty(len(v), dtype=float)
        r[order] = np.arange(len(v), dtype=float)
        # average the ranks of ties
        uniq, inv = np.unique(v, return_inverse=True)
        sums = np.bincount(inv, weights=r)
        counts = np.bincount(inv)
        return (sums / counts)[inv]

    ra, rb = ranks(a), ranks(b)
    if ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def _nfiq2_extractor():
    try:
        import nbis  # noqa: PLC0415 - bench extra, imported only here
    except ImportError as exc:
        from fpagent.devtools.nbis import unavailable_reason  # noqa: PLC0415

        raise UserError(f"NFIQ 2 comes from NBIS. {unavailable_reason()}") from exc
    settings = nbis.NbisExtractorSettings(min_quality=0.0, get_center=False,
                                          check_fingerprint=False, compute_nfiq2=True, ppi=500.0)
    return nbis.new_nbis_extractor(settings)


def _png_bytes(pixels: np.ndarray) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def score_pairs(paths, label: str = "quality") -> tuple[list[int], list[int], int]:
    """(our scores, NFIQ 2 scores, images NFIQ 2 could not score) for the images."""
    from PIL import Image

    from fpagent.biometrics import extraction, fields

    nfiq = _nfiq2_extractor()
    ours, ref, failed = [], [], 0
    paths = list(paths)
    for k, path in enumerate(paths):
        progress(label, k, len(paths))
        pixels = np.asarray(Image.open(path).convert("L"))
        ppi = _ppi_of(path)
        try:
            # NFIQ 2 is defined at 500 ppi: hand it the image we assess at 500 ppi
            img500, _ = fields.resample_to_500(pixels, ppi)
            r = nfiq.extract_minutiae(_png_bytes(np.ascontiguousarray(img500))).quality().score
        except Exception:  # NFIQ 2 refuses some images (e.g. too little foreground)
            failed += 1
            continue
        ours.append(extraction.assess_quality(pixels, ppi=ppi).score)
        ref.append(int(r))
    progress(label, len(paths), len(paths))
    return ours, ref, failed


def _ppi_of(path) -> int:
    from PIL import Image

    with Image.open(path) as im:
        dpi = im.info.get("dpi")
    try:
        v = int(round(float(dpi[0])))
    except (TypeError, ValueError, IndexError):
        return 500
    return v if 300 <= v <= 2000 else 500


def nfiq2_correlation(paths) -> float:
    """Spearman correlation of our quality score with NFIQ 2 over these images."""
    ours, ref, _ = score_pairs(paths)
    return spearman(ours, ref)


def _images(folder: pathlib.Path) -> list[pathlib.Path]:
    if not folder.is_dir():
        raise UserError(f"{folder}: not a folder of fingerprint images")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise UserError(f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)})")
    return files


TARGET = 0.7


def run(args) -> int:
    from fpagent.bench import splits  # noqa: PLC0415

    folders = [pathlib.Path(d) for d in args.dirs]
    datasets = []
    for folder in folders:
        files = _images(folder)
        if args.limit:
            files = files[: args.limit]
        ours, ref, failed = score_pairs(files, label=folder.name)
        rho = spearman(ours, ref)
        datasets.append({"name": folder.name, "split": splits.split_of(folder.name),
                         "images": len(files), "nfiq2_failed": failed,
                         "spearman_nfiq2": rho, "score_median": float(np.median(ours)) if ours else None,
                         "nfiq2_median": float(np.median(ref)) if ref else None})
        print(f"{folder.name}: Spearman vs NFIQ 2 = {rho:.3f} over {len(ours)} images "
              f"(NFIQ 2 failed on {failed}); median score ours {np.median(ours):.0f}, "
              f"NFIQ 2 {np.median(ref):.0f}; {splits.label(folder.name)}")
    for split in (splits.TUNING, splits.VALIDATION):
        figs = [d for d in datasets if d["split"] == split]
        if figs:
            met = all(d["spearman_nfiq2"] >= TARGET for d in figs)
            print(f"{split} sets: target >= {TARGET} on every set {'met' if met else 'NOT met'} "
                  f"(lowest {min(d['spearman_nfiq2'] for d in figs):.3f})")
    emit({"benchmark": "quality", "datasets": datasets, "target": TARGET}, args.json)
    return 0


def register(sub):
    p = sub.add_parser("quality", help="Spearman correlation of the quality score with NFIQ 2",
                       description=__doc__.split("\n\n")[1])
    p.add_argument("dirs", nargs="+", metavar="DIR", help="folder(s) of fingerprint images")
    p.add_argument("--limit", type=int, default=0, help="first N images per folder only")
    add_json_flag(p)
    p.set_defaults(func=run)
