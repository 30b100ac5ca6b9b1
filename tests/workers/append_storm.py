"""A worker process for the concurrency tests: appends through the store, reports every append that returned.

    append_storm.py COUNT PROFILE[,PROFILE...] [--forever]

Prints one JSON line per returned append ({"position", "profile", "version", "type"}),
flushed at once, so a parent that kills this process knows exactly which appends
had returned. Any exception escapes loudly (exit 1 and a traceback).
"""

import json
import random
import sys

from hermes_lifecycle.events import NewEvent
from hermes_lifecycle.settings import Settings
from hermes_lifecycle.store import open_store


def main() -> int:
    count, profiles = int(sys.argv[1]), sys.argv[2].split(",")
    forever = "--forever" in sys.argv
    rng = random.Random()
    with open_store(Settings.from_env()) as store:
        appended = 0
        while forever or appended < count:
            name = rng.choice(profiles)
            kind = rng.choice([("started", "up"), ("stopped", "down")])
            event = store.append(NewEvent(name, kind[0], "cli", kind[1], data={"n": appended}))
            sys.stdout.write(json.dumps({"position": event.position, "profile": event.profile,
                                         "version": event.version, "type": event.type}) + "\n")
            sys.stdout.flush()
            appended += 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
