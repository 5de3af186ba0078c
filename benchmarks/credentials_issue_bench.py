"""Completion to credential, end to end in one process, on SQLite or PostgreSQL + Redis.

What ``credentials_bench.py`` measures is the OB 3.0 library alone; this adds everything around it
that the application does for each learner who completes a course:

1. **record**: the event relay hands each ``course_completed`` event to the credentials subscriber,
   which writes the completion record and its outbox message (one transaction per event, with the
   event's consumed flag);
2. **issue**: the outbox worker delivers ``credential.builtin``: build the OpenBadgeCredential, draw
   a random status-list index, sign it twice (Data Integrity eddsa-rdfc-2022 and VC-JWT), check it
   against the OB 3.0 JSON schema, store both forms (``work_once``, the code the delivery workers run);
3. **verify**: full verification as the ``/api/v1/verify`` endpoint does it (issuer key from our
   did:web profile in the database, signature, schema, dates, revocation in the status list), for
   the JSON and the VC-JWT form.

Set-up (not timed): a fresh database, the native hydrogen course of mooc_packages/, N learners who
complete it through the progress service. Figures are per second of wall clock in this process, with
the share of a core it got (CPU / wall: below ~95% another process took the core).

    .venv/bin/python benchmarks/credentials_issue_bench.py [-n 100] [--backend sqlite|postgres]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def timed(label: str, n: int, work):
    wall, cpu = time.perf_counter(), time.process_time()
    result = work()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(f"{label:<44} {n / wall:8.1f}/s  {1000 * wall / n:7.2f} ms each  core share {100 * cpu / wall:5.1f}%")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=100, help="learners completing the course")
    parser.add_argument("--backend", choices=("sqlite", "postgres"),
                        default=os.environ.get("LMS_BRIDGE_TEST_BACKEND", "sqlite"))
    args = parser.parse_args()
    os.environ["LMS_BRIDGE_TEST_BACKEND"] = args.backend

    from tests.support.db_app import database_app
    from tests.unit.credentials.test_completion import NATIVE, attempt_for, complete, learner

    with database_app(OUTBOX_WORKER="off", PUBLIC_BASE_URL="https://tool.example.org", LOG_LEVEL="WARNING") as app:
        with app.app_context():
            import logging

            logging.getLogger("lms_bridge").setLevel(logging.WARNING)
            from lms_bridge.credentials import issuer
            from lms_bridge.credentials.models import Credential
            from lms_bridge.extensions import db
            from lms_bridge.outbox import work_once
            from lms_bridge.packages.service import import_package
            from lms_bridge.player import events

            course_id = import_package(NATIVE).course_id
            issuer.new_profile(slug="trireme", name="TRIREME", source_project="TRIREME", connectors=["builtin"],
                               validity_days=730)
            db.session.commit()
            for _ in range(args.n):
                user_pk, reg = learner(given_name="Lena", family_name="Learner")
                complete(attempt_for(course_id, user_pk, reg))
            # The other events of completing (activity and score events) are relayed before timing.
            from lms_bridge.player.models import ProgressEvent

            db.session.execute(db.update(ProgressEvent).where(ProgressEvent.kind != "course_completed")
                               .values(consumed=True))
            db.session.commit()
            issuer.signing_key(issuer.profile_by_slug("trireme"))  # key parsed once, like a warm worker
            print(f"{args.n} completions, backend {args.backend}, load average {os.getloadavg()[0]:.2f}")

            def relay_all():
                done = 0
                while (batch := events.relay()):
                    done += batch
                return done

            assert timed("record (completion + outbox message)", args.n, relay_all) == args.n
            issued = timed("issue (build, sign x2, schema, store)", args.n, lambda: work_once().delivered)
            assert issued == args.n, issued
            credentials = db.session.execute(db.select(Credential.credential_json, Credential.credential_jwt)).all()
            db.session.remove()
            ok = timed("verify JSON (Data Integrity), full checks", args.n,
                       lambda: sum(issuer.verify(c[0]).ok for c in credentials))
            ok_jwt = timed("verify VC-JWT, full checks", args.n, lambda: sum(issuer.verify(c[1]).ok for c in credentials))
            assert ok == ok_jwt == args.n, (ok, ok_jwt)
            db.session.remove()


if __name__ == "__main__":
    main()
