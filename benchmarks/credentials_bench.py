"""Open Badges 3.0 credentials: built + signed per second, and verified per second, in one process.

For N credentials (default 200) of the shape the application issues on completion (an
OpenBadgeCredential with ESCO and EQF alignments, ECTS, a pass mark and result, two hashed
identities, evidence and a Bitstring Status List entry):

- build + sign as VC-JWT (EdDSA, OB 3.0 §8.2);
- build + sign with a Data Integrity proof (eddsa-rdfc-2022: two RDFC-1.0 canonicalisations);
- verify each form completely: issuer key from a JWKS, signature, JWT claims, OB 3.0 JSON schema,
  validity dates and revocation against an encoded 131,072-entry status list.

Each phase reports credentials per second (wall clock), milliseconds each, and the share of a core
this process got (CPU time / wall time): below ~95% another process took the core and the figures
understate the library. The machine's load average is printed for the same reason. JSON-LD
contexts are loaded once before timing (as in a long-running worker).

    .venv/bin/python benchmarks/credentials_bench.py [-n 200]
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lms_bridge.credentials import ob3, statuslist
from lms_bridge.credentials.keys import generate_issuer_key
from lms_bridge.credentials.signing import sign_data_integrity, sign_vc_jwt
from lms_bridge.credentials.verify import jwks_resolver, verify

ISSUER_ID = "https://lms.example.org/credentials/issuers/battery-academy"
STATUS_LIST = "https://lms.example.org/credentials/status/1"
ISSUED = datetime(2025, 3, 1, 12, 0, tzinfo=timezone.utc)


def make_credential(i: int, achievement: dict, issuer: dict) -> dict:
    return ob3.build_credential(
        credential_id=f"urn:uuid:00000000-0000-4000-8000-{i:012d}",
        issuer=issuer,
        achievement=achievement,
        identities=[ob3.recipient_identity("emailAddress", f"learner{i}@example.org"),
                    ob3.recipient_identity("ltiUserId", f"lti-user-{i}")],
        valid_from=ISSUED,
        valid_until=ISSUED + timedelta(days=3 * 365),
        name=achievement["name"],
        results=[ob3.build_result(60 + i % 40, result_description=achievement["resultDescription"][0]["id"])],
        evidence=[ob3.build_evidence(id=f"https://lms.example.org/completions/{i}", name="Completion record")],
        credential_status=statuslist.status_entry(STATUS_LIST, i),
        awarded_date=ISSUED,
        credits_earned=2,
    )


def timed(label: str, n: int, work) -> list:
    wall, cpu = time.perf_counter(), time.process_time()
    out = [work(i) for i in range(n)]
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(f"{label:<58} {n / wall:8.1f} /s  {1000 * wall / n:7.2f} ms each  CPU share {100 * cpu / wall:4.0f}%")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, default=200, help="credentials per phase (default 200)")
    n = parser.parse_args().n

    key = generate_issuer_key(kid="key-1", verification_method=f"{ISSUER_ID}#key-1")
    issuer = ob3.build_profile(ISSUER_ID, "Battery Academy", url="https://battery-academy.example.org")
    achievement = ob3.build_achievement(
        id="https://lms.example.org/achievements/hv-battery-safety", name="High-voltage battery safety",
        description="Works safely on the high-voltage battery systems of electric vehicles.",
        criteria_narrative="Complete all modules and score at least 60% in the final assessment.",
        skills=[("http://data.europa.eu/esco/skill/84cc8c9d-db57-42ec-8948-9b632bf06124", "battery chemistry"),
                ("http://data.europa.eu/esco/skill/6122d586-5978-431f-8e7a-96e61fc1f3fc", "wear appropriate protective gear")],
        eqf_level=4, ects=2, in_language="en", field_of_study="Automotive engineering", tags=["electromobility"],
        pass_mark=60,
    )
    resolver = jwks_resolver({ISSUER_ID: {"keys": [key.public_jwk()]}}.get)
    revoked = set(range(1, n, 10))  # every tenth credential revoked, so both outcomes are exercised
    published = {STATUS_LIST: statuslist.status_list_credential(STATUS_LIST, ISSUER_ID, statuslist.encode(revoked))}
    check_status = statuslist.status_checker(published.get)
    now = ISSUED + timedelta(days=30)

    # Warm-up: load contexts and the schema once, as a running worker would have.
    warm = sign_data_integrity(make_credential(0, achievement, issuer), key, verification_method=key.verification_method)
    assert verify(warm, resolve_key=resolver, check_status=check_status, now=now).ok

    load = os.getloadavg()
    print(f"credentials_bench: N={n}, Python {platform.python_version()}, {os.cpu_count()} cores, "
          f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    jwts = timed("build + sign VC-JWT (EdDSA)", n,
                 lambda i: sign_vc_jwt(make_credential(i, achievement, issuer), key))
    signed = timed("build + sign Data Integrity (eddsa-rdfc-2022)", n,
                   lambda i: sign_data_integrity(make_credential(i, achievement, issuer), key,
                                                 verification_method=key.verification_method))
    for label, secured in (("verify VC-JWT (key, signature, claims, schema, dates, status)", jwts),
                           ("verify Data Integrity (key, signature, schema, dates, status)", signed)):
        results = timed(label, n, lambda i: verify(secured[i], resolve_key=resolver, check_status=check_status, now=now))
        valid = sum(r.ok for r in results)
        expected = n - len(revoked)
        assert valid == expected, f"{valid} valid, expected {expected}"
    print(f"(every result as expected: {n - len(revoked)} valid, {len(revoked)} revoked per format)")


if __name__ == "__main__":
    main()
