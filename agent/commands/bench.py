"""`fpagent bench ...`: benchmarks, each a module in agent/bench with `register(subparsers)`."""

import importlib
import pkgutil

import fpagent.bench


def register(sub):
    parser = sub.add_parser("bench", help="measure speed and accuracy (benchmarks, not tests)",
                            description="Benchmarks print readable figures; with --json the "
                            "last line is one JSON object.")
    parser.set_defaults(_parser=parser)
    bench_sub = parser.add_subparsers(dest="bench", metavar="BENCHMARK")
    for info in sorted(pkgutil.iter_modules(fpagent.bench.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"fpagent.bench.{info.name}")
        if hasattr(module, "register"):
            module.register(bench_sub)
