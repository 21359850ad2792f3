"""`fpagent bench accuracy DIR...`: the FVC protocol on folders of fingerprint images.

Per folder (never across folders): genuine pairs are all C(8,2) impression
pairs of each finger; impostor pairs are FVC's own (first impressions of
different fingers, C(10,2) = 45) and the extended set (every pair of images
of different fingers: 80 x 72 / 2 = 2,880 for 10 fingers x 8 impressions;
the data README's "80*70/2 = 2,800" miscounts). Prints EER, FMR100, FMR1000 and ZeroFMR for
both impostor sets, extraction time, comparisons per second on one core,
ISO template size and the Spearman correlation of our quality score with
NFIQ 2. A folder of NNN_I.iso minutiae records from another vendor is scored
foreign vs foreign and, with the images of the same prints, ours vs foreign
(see fpagent.bench.foreign). `--against nbis` runs NIST mindtct + bozorth3 on the same images in
the same process and prints the ratios. Folders marked synthetic in the
data's INDEX.tsv (DB4: SFinGe) are labelled so in every line, and every
set is labelled tuning or validation (fpagent.bench.splits). `--derive
resample:569,resample:1000,crop:330x360,pad:40,crop:330x360+dry:20+faint:40` adds, per
image folder, the same prints resampled to other resolutions, cropped to a small sensor's
area, inside a blank border, or faint and dry as a small USB optical sensor gives them
(fpagent.bench.derived), each scored as a set of its own.
"""

from __future__ import annotations

import csv
import itertools
import os
import pathlib
import re
import sys
import time

import numpy as np

from fpagent.bench import Stopwatch, add_json_flag, emit, progress

IMAGE_NAME = re.compile(r"^(\d+)_(\d+)\.(png|tif|tiff|bmp|jpg)$", re.IGNORECASE)


def register(sub):
    p = sub.add_parser("accuracy", help="FVC protocol accuracy (EER, FMR100, ...) per image folder",
                       description=__doc__.split("\n\n")[1] if __doc__ else None)
    p.add_argument("dirs", nargs="+", metavar="DIR",
                   help="folders of NNN_I.png images (finger NNN, impression I), or of NNN_I.iso "
                        "ISO/ANSI minutiae records made by another extractor")
    p.add_argument("--prints", metavar="DIR", default=None,
                   help="images of the prints a record folder was made from (default: the shared "
                        "layout, templates/VENDOR_SET -> fingerprints/SET); gives ours-vs-foreign "
                        "figures and maps stretched record coordinates back to the image size")
    p.add_argument("--against", choices=["nbis"], help="also run NIST NBIS mindtct + bozorth3")
    p.add_argument("--derive", metavar="SPEC", default="",
                   help="also score derived sets of each image folder: comma-separated "
                        "resample:PPI, crop:WIDTHxHEIGHT and pad:PIXELS (at 500 ppi), faint:PERCENT "
                        "(ridge contrast left) and dry:PERCENT (ridge area lifted), steps joined by + "
                        "apply in order, e.g. resample:569,crop:330x360,pad:40,crop:330x360+faint:40")
    p.add_argument("--scores-out", metavar="FILE.tsv",
                   help="write probe<TAB>reference<TAB>score for every compared pair "
                        "(NBIS scores go to FILE.nbis.tsv)")
    add_json_flag(p)
    p.set_defaults(func=run)


# ------------------------------------------------------------------ metrics (pure)


def error_rates(genuine, impostor):
    """Thresholds and the FNMR / FMR at each (score >= threshold means 'match')."""
    g = np.sort(np.asarray(genuine, dtype=np.float64))
    i = np.sort(np.asarray(impostor, dtype=np.float64))
    ths = np.unique(np.concatenate([g, i, [np.inf]]))
    fnmr = np.searchsorted(g, ths, side="left") / max(len(g), 1)
    fmr = 1.0 - np.searchsorted(i, ths, side="left") / max(len(i), 1)
    return ths, fnmr, fmr


def eer(genuine, impostor) -> float:
    """Equal error rate as FVC defines it: where FNMR and FMR cross.

    t1 is the last threshold with FNMR <= FMR, t2 the first with FNMR >= FMR;
    the EER lies in [FNMR(t1), FMR(t1)] or [FMR(t2), FNMR(t2)] (the tighter
    of the two) and is reported as that interval's middle. Two identical
    score distributions give 0.5, fully separated ones 0.
    """
    _, fnmr, fmr = error_rates(genuine, impostor)
    below = np.nonzero(fnmr <= fmr)[0]
    above = np.nonzero(fnmr >= fmr)[0]
    t1 = int(below[-1]) if below.size else 0
    t2 = int(above[0]) if above.size else len(fnmr) - 1
    if fnmr[t1] + fmr[t1] <= fnmr[t2] + fmr[t2]:
        low, high = fnmr[t1], fmr[t1]
    else:
        low, high = fmr[t2], fnmr[t2]
    return float((low + high) / 2)


def fnmr_at_fmr(genuine, impostor, target: float):
    """FNMR at the lowest threshold with FMR <= target; None when the impostor count can't resolve it."""
    if len(impostor) == 0 or target < 1.0 / len(impostor):
        return None
    ths, fnmr, fmr = error_rates(genuine, impostor)
    k = int(np.argmax(fmr <= target))
    return float(fnmr[k])


def zero_fmr(genuine, impostor) -> float:
    """FNMR at the lowest threshold with no false match."""
    return fnmr_at_fmr(genuine, impostor, 0.0) if len(impostor) else None  # type: ignore[return-value]


def _zero(genuine, impostor):
    ths, fnmr, fmr = error_rates(genuine, impostor)
    return float(fnmr[int(np.argmax(fmr <= 0.0))])


def spearman(a, b):
    """Spearman rank correlation (average ranks for ties); None when undefined."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if len(a) < 3:
        return None

    def ranks(v):
        order = np.argsort(v, kind="stable")
        r = np.empty(len(v))
        r[order] = np.arange(len(v), dtype=np.float64)
        for val in np.unique(v):
            idx = v == val
            if idx.sum() > 1:
                r[idx] = r[idx].mean()
        return r

    ra, rb = ranks(a), ranks(b)
    if ra.std() == 0 or rb.std() == 0:
        return None
    return float(np.corrcoef(ra, rb)[0, 1])


def protocol_pairs(names: list[str]):
    """(genuine, fvc impostor, extended impostor) pairs of image names NNN_I."""
    parsed = {n: IMAGE_NAME.match(n) for n in names}
    finger = {n: m.group(1) for n, m in parsed.items()}
    imp = {n: int(m.group(2)) for n, m in parsed.items()}
    genuine, ext = [], []
    for a, b in itertools.combinations(sorted(names), 2):
        (genuine if finger[a] == finger[b] else ext).append((a, b))
    firsts = sorted(n for n in names if imp[n] == min(imp[m] for m in names if finger[m] == finger[n]))
    fvc = [(a, b) for a, b in itertools.combinations(firsts, 2) if finger[a] != finger[b]]
    return genuine, fvc, ext


# ------------------------------------------------------------------ I/O shell


def _synthetic_folders(dirs) -> dict[str, bool]:
    out = {}
    for d in dirs:
        index = pathlib.Path(d).resolve().parent / "INDEX.tsv"
        if index.exists():
            with open(index, newline="") as f:
                for row in csv.DictReader(f, delimiter="\t"):
                    out[row["folder"]] = row.get("synthetic", "no").strip().lower() == "yes"
    return out


def load_image(path: pathlib.Path) -> tuple[np.ndarray, int]:
    """(grey pixels, ppi from the PNG pHYs / TIFF resolution; 500 when absent or implausible)."""
    from PIL import Image  # noqa: PLC0415

    with Image.open(path) as im:
        dpi = im.info.get("dpi", (500, 500))[0]
        pixels = np.asarray(im.convert("L"))
    ppi = int(round(float(dpi))) if dpi and 300 <= float(dpi) <= 1200 else 500
    return pixels, ppi


def _figures(name, genuine_scores, fvc_scores, ext_scores, extract_s, compare_per_s, sizes,
             quality=None, nfiq2=None, failures=0):
    d = {
        "name": name,
        "n_genuine": len(genuine_scores),
        "n_impostor_fvc": len(fvc_scores),
        "n_impostor_ext": len(ext_scores),
        "eer_ext": eer(genuine_scores, ext_scores),
        "eer_fvc": eer(genuine_scores, fvc_scores),
        "fmr100_ext": fnmr_at_fmr(genuine_scores, ext_scores, 0.01),
        "fmr100_fvc": fnmr_at_fmr(genuine_scores, fvc_scores, 0.01),
        "fmr1000_ext": fnmr_at_fmr(genuine_scores, ext_scores, 0.001),
        "fmr1000_fvc": fnmr_at_fmr(genuine_scores, fvc_scores, 0.001),
        "zerofmr_ext": _zero(genuine_scores, ext_scores),
        "zerofmr_fvc": _zero(genuine_scores, fvc_scores),
        "extract_ms_median": float(np.median(extract_s) * 1000) if extract_s else None,
        "extract_ms_p95": float(np.quantile(extract_s, 0.95) * 1000) if extract_s else None,
        "compare_per_s": compare_per_s,
        "template_bytes_mean": float(np.mean(sizes)) if sizes else None,
        "failures_to_extract": failures,
    }
    if quality is not None:
        d["quality_nfiq2_spearman"] = spearman(quality, nfiq2) if nfiq2 is not None else None
    return d


def _pct(v):
    return "n/a" if v is None else f"{v * 100:.2f}%"


def _print_figures(label: str, f: dict, tag: str) -> None:
    def res(key, n_imp):
        return _pct(f[key]) if f[key] is not None else f"n/a (not resolvable with {n_imp} impostors)"
    print(f"  {label}: EER {_pct(f['eer_ext'])} (extended, {f['n_impostor_ext']} impostors) / "
          f"{_pct(f['eer_fvc'])} (FVC, {f['n_impostor_fvc']} impostors){tag}")
    ni, nf = f["n_impostor_ext"], f["n_impostor_fvc"]
    print(f"    FMR100 {res('fmr100_ext', ni)} ext / {res('fmr100_fvc', nf)} FVC;  "
          f"FMR1000 {res('fmr1000_ext', ni)} ext / {res('fmr1000_fvc', nf)} FVC;  "
          f"ZeroFMR {_pct(f['zerofmr_ext'])} ext / {_pct(f['zerofmr_fvc'])} FVC")
    q = f.get("quality_nfiq2_spearman")
    qtxt = "" if "quality_nfiq2_spearman" not in f else (
        f";  quality~NFIQ2 Spearman {q:.2f}" if q is not None else ";  quality~NFIQ2 n/a")
    print(f"    extraction median {f['extract_ms_median']:.1f} ms, p95 {f['extract_ms_p95']:.1f} ms;  "
          f"{f['compare_per_s']:,.0f} comparisons/s (one core, best pass);  "
          f"template {f['template_bytes_mean']:.0f} B (ISO);  "
          f"failures to extract {f['failures_to_extract']}{qtxt}")


def _bench_ours(files, dirname, nfiq2_scores):
    from fpagent.biometrics import extraction
    from fpagent.records import fmr
    from fpagent.biometrics import matcher  # noqa: PLC0415
    from fpagent.errors import NoUsableFingerprint  # noqa: PLC0415
    from fpagent.biometrics.template import MINUTIA_DTYPE, Template  # noqa: PLC0415

    extraction.warm_up()
    matcher.warm_up()
    templates, times, quality, sizes = {}, [], {}, []
    failures = 0
    for n, path in enumerate(files):
        pixels, ppi = load_image(path)
        t0 = time.perf_counter()
        try:
            ex = extraction.extract(pixels, ppi)
            tpl, q = ex.template, ex.quality.score
        except NoUsableFingerprint:
            # a failure to extract still takes part in every comparison, scoring 0
            failures += 1
            tpl = Template(np.zeros(0, MINUTIA_DTYPE), pixels.shape[1], pixels.shape[0], ppi)
            q = 0
        times.append(time.perf_counter() - t0)
        templates[path.name] = tpl
        quality[path.name] = q
        sizes.append(len(fmr.encode_iso(tpl)))
        progress(f"{dirname}: extracting", n + 1, len(files))
    prepared = {k: matcher.prepare(t) for k, t in templates.items()}
    return prepared, times, quality, sizes, failures, matcher.compare_prepared


def _bench_nbis(files, dirname):
    from fpagent.records import fmr
    from fpagent.devtools import nbis as nbis_ref  # noqa: PLC0415

    nbis_ref.extract(files[0])  # load the library before timing
    minutiae, times, sizes = {}, [], []
    for n, path in enumerate(files):
        pixels, ppi = load_image(path)
        t0 = time.perf_counter()
        m = nbis_ref.extract(path, ppi=ppi)  # the image's own resolution, as ours gets it
        times.append(time.perf_counter() - t0)
        minutiae[path.name] = m
        sizes.append(len(fmr.encode_iso(nbis_ref.to_template(m, pixels.shape[1], pixels.shape[0], ppi))))
        progress(f"{dirname}: NBIS mindtct", n + 1, len(files))
    return minutiae, times, sizes, nbis_ref.bozorth3


TIMING_PASSES = 3  # comparisons/s: the best of up to this many passes over all pairs ...
TIMING_BUDGET_S = 3.0  # ... while the passes so far took less CPU time than this


def _score_all(label, items, compare, pairs, dirname):
    """Scores of all pairs, and comparisons per CPU second on one core.

    The rate is the best of a few timed passes over the same pairs (process
    CPU time, the kernels are single-threaded): on a shared machine the best
    pass is the one least disturbed by the neighbours. Ours and NBIS are
    timed by the same rule (NBIS's slow binding usually gets one pass).
    """
    scores = {}
    total = len(pairs)
    with Stopwatch() as sw:
        for n, (a, b) in enumerate(pairs):
            scores[(a, b)] = float(compare(items[a], items[b]))
            if n % 500 == 0 or n + 1 == total:
                progress(f"{dirname}: {label} comparing", n + 1, total)
    spent, best = sw.cpu, sw.cpu
    for _ in range(TIMING_PASSES - 1):
        if spent >= TIMING_BUDGET_S:
            break
        with Stopwatch() as sw:
            for a, b in pairs:
                compare(items[a], items[b])
        spent += sw.cpu
        best = min(best, sw.cpu)
    return scores, total / max(best, 1e-9)


def _reference_rate(prepared, pairs) -> float:
    """Comparisons per CPU second of the matcher's plain-numpy reference (a sample of pairs)."""
    from fpagent.biometrics import matcher  # noqa: PLC0415
    from fpagent.biometrics.match_kernels.match_score import match_prepared_reference  # noqa: PLC0415

    with Stopwatch() as sw:
        for a, b in pairs:
            match_prepared_reference(*prepared[a].args, *prepared[b].args, matcher.PARAMS)
    return len(pairs) / max(sw.cpu, 1e-9)


def run(args) -> int:
    # one core: the matcher kernels are serial; keep Numba from starting a thread pool
    os.environ.setdefault("NUMBA_NUM_THREADS", "1")
    from fpagent.errors import UserError  # noqa: PLC0415

    synthetic = _synthetic_folders(args.dirs)
    want_nbis = args.against == "nbis"
    nbis_ok = False
    try:
        from fpagent.devtools import nbis as nbis_ref  # noqa: PLC0415

        nbis_ok = nbis_ref.available()
    except Exception:  # noqa: BLE001
        nbis_ok = False
    if want_nbis and not nbis_ok:
        from fpagent.devtools.nbis import unavailable_reason  # noqa: PLC0415

        raise UserError(f"--against nbis: {unavailable_reason()}")
    from fpagent.bench import derived, foreign, splits  # noqa: PLC0415
    import tempfile  # noqa: PLC0415

    derivations = derived.parse(args.derive)
    scratch = tempfile.TemporaryDirectory(prefix="fpagent-derived-")
    score_rows, nbis_rows = [], []
    datasets = []
    queue = list(args.dirs)
    while queue:
        folder = pathlib.Path(queue.pop(0))
        if foreign.is_record_folder(folder):
            datasets.append(_bench_foreign_folder(folder, args.prints))
            continue
        files = sorted(p for p in folder.iterdir() if IMAGE_NAME.match(p.name)) if folder.is_dir() else []
        if len(files) < 2:
            raise UserError(f"{folder}: no NNN_I.png fingerprint images found")
        name = folder.name
        if "@" not in name:  # a source folder: its derived sets come right after it
            queue[:0] = [derived.write_folder(folder, files, chain, pathlib.Path(scratch.name), load_image)
                         for chain in derivations]
        is_synth = synthetic.get(name.split("@", 1)[0], False)
        tag = "  [SYNTHETIC images, not real-sensor accuracy]" if is_synth else ""
        names = [p.name for p in files]
        genuine, fvc, ext = protocol_pairs(names)
        all_pairs = genuine + ext

        nfiq2 = None
        if nbis_ok:
            from fpagent.devtools import nbis as nbis_ref  # noqa: PLC0415

            nfiq2 = {}
            for n, p in enumerate(files):
                try:
                    # NFIQ 2 is defined at 500 ppi: hand it the image normalised as ours sees it
                    from fpagent.biometrics.fields import resample_to_500  # noqa: PLC0415

                    px500, _ = resample_to_500(*load_image(p))
                    nfiq2[p.name] = nbis_ref.nfiq2_score(
                        nbis_ref.extract(np.ascontiguousarray(px500), nfiq2=True))
                except Exception:  # noqa: BLE001 - NFIQ 2 refuses some images; left out of the correlation
                    nfiq2[p.name] = None
                progress(f"{name}: NFIQ 2", n + 1, len(files))

        prepared, times, quality, sizes, failures, compare = _bench_ours(files, name, nfiq2)
        scores, per_s = _score_all("ours", prepared, compare, all_pairs, name)
        g = [scores[p] for p in genuine]
        rated = [n for n in names if nfiq2 and nfiq2.get(n) is not None]
        fig = _figures(name, g, [scores[p] for p in fvc], [scores[p] for p in ext], times, per_s,
                       sizes, quality=[quality[n] for n in rated],
                       nfiq2=[nfiq2[n] for n in rated] if nfiq2 else None, failures=failures)
        sample = all_pairs[::max(1, len(all_pairs) // 100)]
        fig["compare_per_s_numpy_reference"] = _reference_rate(prepared, sample)
        fig["nfiq2_rated_images"] = len(rated)
        fig["synthetic"] = is_synth
        fig["split"] = splits.split_of(name)
        fig["ppi"] = load_image(files[0])[1]
        fig["image_size"] = list(load_image(files[0])[0].shape[::-1])
        score_rows += [(f"{name}/{a}", f"{name}/{b}", s) for (a, b), s in scores.items()]
        print(f"{name}{' (synthetic)' if is_synth else ''}: {len(files)} images "
              f"({fig['image_size'][0]}x{fig['image_size'][1]} px, {fig['ppi']} ppi), "
              f"{len(genuine)} genuine pairs; {splits.label(name)}")
        _print_figures("ours", fig, tag)
        ref = fig["compare_per_s_numpy_reference"]
        print(f"    matcher kernel vs its plain-numpy reference ({len(sample)} pairs): "
              f"{ref:,.0f} comparisons/s, kernel {fig['compare_per_s'] / ref:.0f}x faster")
        if want_nbis:
            minutiae, ntimes, nsizes, bz = _bench_nbis(files, name)
            nscores, nper_s = _score_all("NBIS bozorth3", minutiae, bz, all_pairs, name)
            nfig = _figures(name, [nscores[p] for p in genuine], [nscores[p] for p in fvc],
                            [nscores[p] for p in ext], ntimes, nper_s, nsizes)
            nbis_rows += [(f"{name}/{a}", f"{name}/{b}", s) for (a, b), s in nscores.items()]
            fig["nbis"] = nfig
            ratios = {
                "eer_ext": fig["eer_ext"] / nfig["eer_ext"] if nfig["eer_ext"] else None,
                "eer_fvc": fig["eer_fvc"] / nfig["eer_fvc"] if nfig["eer_fvc"] else None,
                "extract_ms_median": fig["extract_ms_median"] / nfig["extract_ms_median"],
                "compare_per_s": fig["compare_per_s"] / nfig["compare_per_s"],
                "template_bytes_mean": fig["template_bytes_mean"] / nfig["template_bytes_mean"],
            }
            fig["ratio_to_nbis"] = ratios
            _print_figures("NBIS mindtct+bozorth3", nfig, tag)

            def r(v):
                return "n/a" if v is None else f"{v:.2f}x"

            print(f"  ours/NBIS: EER {r(ratios['eer_ext'])} (extended), {r(ratios['eer_fvc'])} (FVC); "
                  f"extraction time {r(ratios['extract_ms_median'])}; comparisons/s "
                  f"{r(ratios['compare_per_s'])}; template size {r(ratios['template_bytes_mean'])}")
        datasets.append(fig)
        sys.stdout.flush()
    scratch.cleanup()
    if args.scores_out:
        out = pathlib.Path(args.scores_out)
        _write_scores(out, score_rows)
        if nbis_rows:
            _write_scores(out.with_suffix(".nbis.tsv"), nbis_rows)
    progress("matcher kernels: first compile and cached start", 0, 1)
    starts = kernel_start_times()
    progress("matcher kernels: first compile and cached start", 1, 1)

    def sec(v):
        return "n/a" if v is None else f"{v:.2f} s"

    print(f"constants tuned on: {', '.join(splits.tuning_sets())} and the sets derived from it; "
          "every other set is validation")
    print(f"matcher + prefilter kernels (import to ready): first compile {sec(starts['first_compile_s'])}, "
          f"cached start {sec(starts['cached_start_s'])}")
    emit({"benchmark": "accuracy", "datasets": datasets, "matcher_kernels": starts,
          "tuning_sets": splits.tuning_sets()}, args.json)
    return 0


def _threshold_figures(label, genuine, impostor, threshold) -> dict:
    from fpagent.bench.foreign import rates_at  # noqa: PLC0415

    fnmr, fmr = rates_at(genuine, impostor, threshold)
    d = {"eer": eer(genuine, impostor), "fnmr_at_threshold": fnmr, "fmr_at_threshold": fmr,
         "n_genuine": len(genuine), "n_impostor": len(impostor)}
    print(f"  {label}: EER {_pct(d['eer'])} ({len(impostor)} impostors);  at MATCH_THRESHOLD "
          f"{threshold}: FNMR {_pct(fnmr)} of {len(genuine)} genuine, FMR {_pct(fmr)}")
    return d


def _bench_foreign_folder(folder: pathlib.Path, prints_arg) -> dict:
    """Our matcher on another extractor's records: foreign vs foreign, ours vs foreign."""
    from fpagent.bench import foreign  # noqa: PLC0415
    from fpagent.biometrics import matcher  # noqa: PLC0415

    matcher.warm_up()
    records = foreign.load_records(folder)
    prints = pathlib.Path(prints_arg) if prints_arg else foreign.prints_folder_for(folder)
    images = {}
    if prints is not None:
        images = {p.stem: p for p in sorted(prints.iterdir())
                  if IMAGE_NAME.match(p.name) and p.stem in records}
    names = sorted(records)
    print(f"{folder.name}: {len(names)} foreign records"
          + (f", prints in {prints} ({len(images)} images)" if images else ", no images of the prints"))
    th = matcher.MATCH_THRESHOLD
    as_png = [f"{n}.png" for n in names]
    genuine, _, ext = protocol_pairs(as_png)

    def score_set(prepared, pairs):
        return [matcher.compare_prepared(prepared[a[:-4]], prepared[b[:-4]]) for a, b in pairs]

    fig = {"name": folder.name, "foreign_records": True, "threshold": th}
    raw = {n: matcher.prepare(t) for n, t in records.items()}
    fig["foreign_vs_foreign_as_recorded"] = _threshold_figures(
        "foreign vs foreign (coordinates as recorded)", score_set(raw, genuine), score_set(raw, ext), th)
    if len(images) == len(names):
        sizes = {n: load_image(p) for n, p in images.items()}
        mapped = {n: matcher.prepare(foreign.unstretch(records[n], px.shape[1], px.shape[0], ppi))
                  for n, (px, ppi) in sizes.items()}
        fig["foreign_vs_foreign"] = _threshold_figures(
            "foreign vs foreign (mapped back to the image size)", score_set(mapped, genuine),
            score_set(mapped, ext), th)
        files = [images[n] for n in names]
        ours_by_file, *_ = _bench_ours(files, folder.name, None)
        ours = {pathlib.Path(k).stem: p for k, p in ours_by_file.items()}
        fig["ours_vs_ours"] = _threshold_figures("ours vs ours (same prints)", score_set(ours, genuine),
                                                 score_set(ours, ext), th)
        cg, ci = foreign.cross_pairs(names)
        fig["ours_vs_foreign"] = _threshold_figures(
            "ours vs foreign (every ordered pair of different images)",
            [matcher.compare_prepared(ours[a], mapped[b]) for a, b in cg],
            [matcher.compare_prepared(ours[a], mapped[b]) for a, b in ci], th)
    sys.stdout.flush()
    return fig


_START_PROBE = (
    "import time, numpy as np; t = time.perf_counter(); "
    "from fpagent.biometrics import matcher; from fpagent.screening import prefilter; matcher.warm_up(); "
    "from fpagent.screening.prefilter_scan import scan; "
    "d = np.zeros((1, prefilter.DESCRIPTOR_BYTES), np.uint8); "
    "scan(d, np.ones(1, np.float32), np.zeros(prefilter.DESCRIPTOR_BYTES, np.float32), np.float32(0), 1); "
    "print(time.perf_counter() - t)"
)


def kernel_start_times() -> dict:
    """Import-to-ready time of the matcher and prefilter kernels: cold (first compile into an
    empty Numba cache) and cached (the same cache again), each in a fresh process."""
    import subprocess  # noqa: PLC0415
    import tempfile  # noqa: PLC0415

    out = {}
    with tempfile.TemporaryDirectory(prefix="fpagent-numba-") as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        for label in ("first_compile_s", "cached_start_s"):
            res = subprocess.run([sys.executable, "-c", _START_PROBE], env=env, capture_output=True,
                                 text=True, timeout=300)
            try:
                out[label] = float(res.stdout.strip().splitlines()[-1])
            except (ValueError, IndexError):
                out[label] = None
    return out


def _write_scores(path: pathlib.Path, rows) -> None:
    with open(path, "w") as f:
        f.write("probe\treference\tscore\n")
        for a, b, s in rows:
            f.write(f"{a}\t{b}\t{s:.6g}\n")
