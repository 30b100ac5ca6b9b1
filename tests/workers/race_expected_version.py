"""A worker for the optimistic-concurrency race: wait for a start signal, then append with an expected version.

    race_expected_version.py PROFILE EXPECTED_VERSION GO_FILE

Exit 0 when the append won; otherwise the store error's exit status (4 for a conflict)
and its one line on stderr, as the CLI would report it.
"""

import os
import sys
import time

from hermes_lifecycle.errors import HermesError
from hermes_lifecycle.events import NewEvent
from hermes_lifecycle.settings import Settings
from hermes_lifecycle.store import open_store


def main() -> int:
    name, expected, go = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    with open_store(Settings.from_env()) as store:
        store.last_position()  # connection open and schema checked before the race starts
        print("ready", flush=True)
        while not os.path.exists(go):
            time.sleep(0.0005)
        try:
            store.append(NewEvent(name, "started", "cli", "up"), expected_version=expected)
        except HermesError as error:
            print(f"hermes-state: {error}", file=sys.stderr)
            return error.exit_status
    return 0


if __name__ == "__main__":
    sys.exit(main())
