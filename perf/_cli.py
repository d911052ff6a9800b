"""The speed scripts' shared command line: ``--json OUT`` plus one option per setting."""

import argparse


def speed_parser(doc, **settings):
    """An argument parser described by ``doc``'s first line, with ``--json OUT`` and one
    ``--NAME`` option per keyword (typed and defaulted by its value)."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--json", metavar="OUT")
    for name, default in settings.items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(default), default=default)
    return parser
