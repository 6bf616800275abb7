"""./crm dead-letters SERVICE [redrive [HANDLER]] — look at or re-drive a service's dead letters."""

from __future__ import annotations

import argparse
import json
import sys

from crm_platform.config import amqp_uri
from crm_platform.deadletters import list_dead_letters, redrive_dead_letters


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="./crm dead-letters", description=__doc__)
    parser.add_argument("service")
    parser.add_argument("action", nargs="?", choices=["list", "redrive"], default="list")
    parser.add_argument("handler", nargs="?", help="only this handler (<service>.<method>)")
    args = parser.parse_args(argv)
    if args.action == "redrive":
        moved = redrive_dead_letters(amqp_uri(), args.service, handler=args.handler)
        print(f"re-drove {moved} dead letter(s) of {args.service}")
        return 0
    letters = list_dead_letters(amqp_uri(), args.service)
    for letter in letters:
        print(json.dumps(letter.summary(), ensure_ascii=False))
    print(f"{len(letters)} dead letter(s) in {args.service}.dead_letters", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
