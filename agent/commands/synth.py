"""`fpagent synth`: write synthetic fingerprints (no real person's prints) to PNG files.

For demos, load tests and galleries: the same seed, person, finger and
impression always give the same image. The prints come from the HAL's
synthetic sensor (`synthetic://?seed=S&person=P&width=W&height=H`): each
capture of a finger returns its next impression.
"""

from __future__ import annotations

import pathlib

from fpagent.errors import UserError


def _fingers(text: str) -> list[int]:
    """"2", "1,6" or "1-10" -> finger position codes."""
    fingers: list[int] = []
    try:
        for part in text.split(","):
            lo, sep, hi = part.partition("-")
            fingers.extend(range(int(lo), int(hi) + 1) if sep else [int(lo)])
    except ValueError:
        raise UserError(f"--finger {text!r}: use a number, a list (1,6) or a range (1-10)") from None
    if not fingers or any(not 1 <= f <= 10 for f in fingers):
        raise UserError(f"--finger {text!r}: finger positions are 1 (right thumb) to 10 (left little)")
    return fingers


def register(sub):
    p = sub.add_parser(
        "synth",
        help="write synthetic fingerprint images (PNG, 500 ppi) for demos and tests",
        description="Generate seeded synthetic fingerprints (SFinGe-style: orientation model, "
        "Gabor-grown ridges, varied impressions). Files are named "
        "PERSON_FINGER_IMPRESSION.png with impressions counted from 1 as FVC does "
        "(generator impression 0 is _1); the same arguments always give the same images.",
    )
    p.add_argument("--person", type=int, default=0, metavar="P", help="synthetic person number (default 0)")
    p.add_argument("--persons", type=int, default=1, metavar="N",
                   help="how many persons, starting at --person (default 1)")
    p.add_argument("--finger", default="1", metavar="F",
                   help="finger position(s) 1-10: 2, 1,6 or 1-10 (default 1)")
    p.add_argument("--impressions", type=int, default=1, metavar="N",
                   help="impressions per finger (default 1)")
    p.add_argument("--seed", type=int, default=0, help="generator seed (default 0)")
    p.add_argument("--size", default="256x288", metavar="WxH",
                   help="image width x height in pixels (default 256x288, a ZFM module's image)")
    p.add_argument("--out", required=True, metavar="DIR", help="folder to write into (created)")
    p.set_defaults(func=cmd_synth)


def cmd_synth(args) -> int:
    from PIL import Image

    from fpagent import hal
    from fpagent.bench import image_size, progress

    fingers = _fingers(args.finger)
    rows, cols = image_size(args.size)
    if args.person < 0 or args.persons < 1 or args.impressions < 1 or args.seed < 0:
        raise UserError("--person and --seed must be >= 0, --persons and --impressions >= 1")
    out = pathlib.Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create {out}: {exc.strerror}") from None
    total = args.persons * len(fingers) * args.impressions
    done = 0
    for person in range(args.person, args.person + args.persons):
        url = f"synthetic://?seed={args.seed}&person={person}&width={cols}&height={rows}"
        for finger in fingers:
            with hal.open_sensor(url) as sensor:  # a fresh sensor starts at impression 0
                for imp in range(args.impressions):  # each capture: the finger's next impression
                    progress("synth", done, total)
                    image = sensor.capture(finger_position=finger)
                    path = out / f"{person}_{finger}_{imp + 1}.png"
                    tmp = path.with_suffix(".png.tmp")
                    Image.fromarray(image.pixels).save(tmp, format="PNG", dpi=(image.ppi, image.ppi))
                    tmp.replace(path)  # never a half-written image under the final name
                    done += 1
    progress("synth", total, total)
    print(f"wrote {total} images to {out}")
    return 0
