"""`fpagent bench quality DIR...`: does our quality score rank prints like NIST NFIQ 2?

For every image of each folder it computes our score (fpagent.biometrics.quality, through
extraction so the minutiae count is part of it) and NFIQ 2 (NBIS, the bench
extra `nbis-py`), and prints the Spearman rank correlation per folder, each
marked tuning or validation (fpagent.bench.splits). Never pooled: pooling
sets of different sensors rewards telling the sensors apart, not ranking the
prints, and inflates the figure. The quality weights were fitted on the
tuning split (`--fit`, which refuses any other folder); the validation
figures are the out-of-sample ones. The target is >= 0.7 on every set. `nfiq2_correlation(paths)` is the same figure for
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


def rated_reports(paths, label: str = "quality") -> tuple[list, list[int], int]:
    """(our quality reports, NFIQ 2 scores, images NFIQ 2 could not score) for the images."""
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
        ours.append(extraction.assess_quality(pixels, ppi=ppi))
        ref.append(int(r))
    progress(label, len(paths), len(paths))
    return ours, ref, failed


def score_pairs(paths, label: str = "quality") -> tuple[list[int], list[int], int]:
    """(our scores, NFIQ 2 scores, images NFIQ 2 could not score) for the images."""
    reports, ref, failed = rated_reports(paths, label)
    return [r.score for r in reports], ref, failed


# exponents tried for each term of the score (fpagent.biometrics.quality.WEIGHTS); none may
# drop out: each guards against a damage (blur, faint or patchy ridges) that the tuning
# set hardly shows, so ranking its 80 prints cannot tell what the term is worth
FIT_GRID = {"area": (0.5, 1.0, 1.5), "blocks": (0.5, 1.0, 1.5, 2.0),
            "clarity": (0.5, 1.0, 1.5, 2.0), "minutiae": (0.25, 0.5, 0.75, 1.0),
            "contrast": (2.0, 3.0)}  # at least 2: the gate must refuse a faint print


def fit_weights(terms: list[dict], nfiq2: list[int]) -> tuple[dict, float, float]:
    """(weights, scale, Spearman) that rank these prints most like NFIQ 2.

    Pure: the caller decides which prints it may fit on (the tuning split
    only). The weights are the grid point with the best Spearman of the raw
    score (the current weights win ties); the scale then puts the median
    print's score at NFIQ 2's median.
    """
    import itertools  # noqa: PLC0415

    from fpagent.biometrics import quality  # noqa: PLC0415

    names = list(FIT_GRID)
    logs = np.log(np.array([[max(t[n], 1e-9) for n in names] for t in terms]))
    best_w = dict(quality.WEIGHTS)
    best = spearman(logs @ np.array([best_w[n] for n in names]), nfiq2)
    for combo in itertools.product(*(FIT_GRID[n] for n in names)):
        rho = spearman(logs @ np.array(combo), nfiq2)
        if rho > best + 1e-9:
            best, best_w = rho, dict(zip(names, combo))
    x_median = float(np.median([quality.raw_score(t, best_w) for t in terms]))
    target = min(max(float(np.median(nfiq2)), 1.0), 99.0) / 100.0
    scale = x_median / -np.log(1.0 - target)
    return best_w, float(scale), float(best)


def run_fit(folders, limit: int, json_out) -> int:
    """Fit the quality weights on tuning-split folders only; refuse any other."""
    from fpagent.bench import splits  # noqa: PLC0415
    from fpagent.biometrics import quality  # noqa: PLC0415

    others = [f.name for f in folders if splits.split_of(f.name) != splits.TUNING]
    if others:
        raise UserError(f"--fit uses the tuning split only ({', '.join(splits.tuning_sets())}); "
                        f"{', '.join(others)} is validation")
    terms, ref = [], []
    for folder in folders:
        files = _images(folder)[: limit or None]
        reports, nfiq2, _ = rated_reports(files, label=f"{folder.name}: fit")
        for r, q in zip(reports, nfiq2):
            if r.terms is not None and r.score > 0:  # no usable print: 0 whatever the weights
                terms.append(r.terms)
                ref.append(q)
    weights, scale, rho = fit_weights(terms, ref)
    now = spearman([quality.raw_score(t) for t in terms], ref)
    print(f"fitted on {len(terms)} tuning images: Spearman vs NFIQ 2 {rho:.3f} "
          f"(current weights {now:.3f})")
    print(f"WEIGHTS = {weights!r}\nSCALE = {scale:.3g}")
    emit({"benchmark": "quality-fit", "sets": [f.name for f in folders], "images": len(terms),
          "weights": weights, "scale": scale, "spearman_fitted": rho, "spearman_current": now},
         json_out)
    return 0


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
    if args.fit:
        return run_fit(folders, args.limit, args.json)
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
    p.add_argument("--fit", action="store_true",
                   help="fit the score's weights and scale (tuning-split folders only) and print them")
    add_json_flag(p)
    p.set_defaults(func=run)
