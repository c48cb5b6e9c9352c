#!/usr/bin/env python3
"""Soak driver of softhsm/soak.sh (run that, not this).

Starts the kms server, runs mixed operations from several client threads (each on a bounded
set of keys: a new key only to replace one scheduled for deletion, so memory tracks requests,
not a growing key count) for a fixed time while
fault episodes are injected through the fault module's marker files (device errors, a token
that disappears, a slow token), samples the server's resident memory, then kills the server
with SIGKILL, restarts it and checks every acknowledged write:

- every key whose CreateKey answered 200 exists, with the description, tags, enabled state and
  deletion schedule of its last acknowledged change;
- every alias whose CreateAlias/UpdateAlias answered 200 (and no later DeleteAlias did) points
  at its key;
- every ciphertext an Encrypt or GenerateDataKey answered decrypts to its plaintext.

Exit status 1 when a write is lost, when the server dies on its own, or when resident memory
grows by more than --rss-growth-mb between the first sample after warm-up and the end.
"""

import argparse
import base64
import collections
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time

import botocore.session
from botocore.config import Config
from botocore.exceptions import ClientError, BotoCoreError

ACCESS_KEY = "AKIAIOSFODNN7EXAMPLE"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


def client(port):
    s = botocore.session.get_session()
    return s.create_client(
        "kms",
        region_name="us-east-1",
        endpoint_url=f"http://127.0.0.1:{port}",
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        config=Config(retries={"max_attempts": 1}, connect_timeout=5, read_timeout=30),
    )


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def start_server(args):
    log = open(args.log, "ab")
    p = subprocess.Popen([args.server, "--config", args.config], stdout=log, stderr=log)
    c = client(args.port)
    deadline = time.time() + 60
    while time.time() < deadline:
        if p.poll() is not None:
            sys.exit(f"FAIL: the server exited at start (status {p.returncode}); see {args.log}")
        try:
            c.list_keys(Limit=1)
            return p
        except (ClientError, BotoCoreError):
            time.sleep(0.2)
    p.kill()
    sys.exit("FAIL: the server did not answer within 60 s")


class Ledger:
    """Acknowledged writes (only what answered 200 is recorded)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.keys = {}  # key id -> {"description", "tags", "enabled", "pending_deletion"}
        self.aliases = {}  # alias name -> key id (None when deleted)
        # (key id, blob, plaintext, context): the latest 20,000, so that a long run still checks
        # ciphertexts of keys that are enabled at the end (the first ones' keys are long gone).
        self.ciphertexts = collections.deque(maxlen=20000)
        self.counts = {}  # operation -> [ok, failed]

    def count(self, op, ok, code=None):
        with self.lock:
            c = self.counts.setdefault(op, {"ok": 0, "errors": {}})
            if ok:
                c["ok"] += 1
            else:
                c["errors"][code] = c["errors"].get(code, 0) + 1


def worker(n, args, ledger, stop):
    rng = random.Random(n)
    c = client(args.port)
    mine = []  # keys this worker created (no other worker changes them)
    seq = 0

    def call(op, fn):
        try:
            r = fn()
            ledger.count(op, True)
            return r
        except ClientError as e:
            ledger.count(op, False, e.response.get("Error", {}).get("Code", "?"))
        except BotoCoreError as e:
            ledger.count(op, False, type(e).__name__)
        return None

    while not stop.is_set():
        seq += 1
        roll = rng.random()
        if len(mine) < args.keys_per_client and (not mine or roll < 0.05):
            desc = f"soak {n}-{seq}"
            r = call("CreateKey", lambda: c.create_key(Description=desc, Tags=[{"TagKey": "w", "TagValue": str(n)}]))
            if r:
                kid = r["KeyMetadata"]["KeyId"]
                mine.append(kid)
                with ledger.lock:
                    ledger.keys[kid] = {"description": desc, "tags": {"w": str(n)}, "enabled": True, "pending_deletion": False}
            continue
        usable = [k for k in mine if not ledger.keys[k]["pending_deletion"]]
        if not usable:
            mine.clear()
            continue
        kid = rng.choice(usable)
        if roll < 0.45:
            pt = os.urandom(rng.randint(1, 512))
            ctx = {"w": str(n), "s": str(seq)}
            r = call("Encrypt", lambda: c.encrypt(KeyId=kid, Plaintext=pt, EncryptionContext=ctx))
            if r:
                with ledger.lock:
                    ledger.ciphertexts.append((kid, r["CiphertextBlob"], pt, ctx))
                d = call("Decrypt", lambda: c.decrypt(CiphertextBlob=r["CiphertextBlob"], EncryptionContext=ctx))
                if d and d["Plaintext"] != pt:
                    ledger.count("DecryptMismatch", False, kid)
        elif roll < 0.60:
            r = call("GenerateDataKey", lambda: c.generate_data_key(KeyId=kid, KeySpec="AES_256"))
            if r:
                with ledger.lock:
                    ledger.ciphertexts.append((kid, r["CiphertextBlob"], r["Plaintext"], {}))
        elif roll < 0.68:
            desc = f"updated {n}-{seq}"
            if call("UpdateKeyDescription", lambda: c.update_key_description(KeyId=kid, Description=desc)) is not None:
                with ledger.lock:
                    ledger.keys[kid]["description"] = desc
        elif roll < 0.75:
            v = str(seq)
            if call("TagResource", lambda: c.tag_resource(KeyId=kid, Tags=[{"TagKey": "t", "TagValue": v}])) is not None:
                with ledger.lock:
                    ledger.keys[kid]["tags"]["t"] = v
        elif roll < 0.82:
            alias = f"alias/soak-{n}-{rng.randint(0, 20)}"
            known = ledger.aliases.get(alias)
            if known is None:
                if call("CreateAlias", lambda: c.create_alias(AliasName=alias, TargetKeyId=kid)) is not None:
                    with ledger.lock:
                        ledger.aliases[alias] = kid
            elif rng.random() < 0.5:
                if call("UpdateAlias", lambda: c.update_alias(AliasName=alias, TargetKeyId=kid)) is not None:
                    with ledger.lock:
                        ledger.aliases[alias] = kid
            else:
                if call("DeleteAlias", lambda: c.delete_alias(AliasName=alias)) is not None:
                    with ledger.lock:
                        ledger.aliases[alias] = None
        elif roll < 0.88:
            enabled = ledger.keys[kid]["enabled"]
            op = "DisableKey" if enabled else "EnableKey"
            fn = (lambda: c.disable_key(KeyId=kid)) if enabled else (lambda: c.enable_key(KeyId=kid))
            if call(op, fn) is not None:
                with ledger.lock:
                    ledger.keys[kid]["enabled"] = not enabled
        elif roll < 0.8825 and len(usable) > 3:
            if call("ScheduleKeyDeletion", lambda: c.schedule_key_deletion(KeyId=kid, PendingWindowInDays=30)) is not None:
                with ledger.lock:
                    ledger.keys[kid]["pending_deletion"] = True
                mine.remove(kid)
        else:
            call("DescribeKey", lambda: c.describe_key(KeyId=kid))
            call("ListAliases", lambda: c.list_aliases(Limit=50))


def faults(args, stop, events):
    """Every period: 5 s of device errors, 3 s of a removed token, 5 s of a 50 ms slow token."""
    base = os.path.join(args.faults, args.token)
    episodes = [(".fail", "", 5), (".removed", "", 3), (".delay-ms", "50", 5)]
    i = 0
    while not stop.wait(args.fault_period):
        suffix, content, secs = episodes[i % len(episodes)]
        i += 1
        with open(base + suffix, "w") as f:
            f.write(content)
        events.append({"at": time.time(), "fault": suffix.lstrip("."), "seconds": secs})
        stop.wait(secs)
        os.unlink(base + suffix)


def verify(args, ledger):
    c = client(args.port)
    lost = []
    for kid, want in ledger.keys.items():
        try:
            m = c.describe_key(KeyId=kid)["KeyMetadata"]
        except ClientError as e:
            lost.append(f"key {kid}: {e}")
            continue
        if m.get("Description") != want["description"]:
            lost.append(f"key {kid}: description {m.get('Description')!r}, acknowledged {want['description']!r}")
        state = m["KeyState"]
        want_state = "PendingDeletion" if want["pending_deletion"] else ("Enabled" if want["enabled"] else "Disabled")
        if state != want_state:
            lost.append(f"key {kid}: state {state}, acknowledged {want_state}")
        tags = {t["TagKey"]: t["TagValue"] for t in c.list_resource_tags(KeyId=kid)["Tags"]}
        for k, v in want["tags"].items():
            if tags.get(k) != v:
                lost.append(f"key {kid}: tag {k}={tags.get(k)!r}, acknowledged {v!r}")
    aliases = {}
    marker = None
    while True:
        r = c.list_aliases(Limit=100, **({"Marker": marker} if marker else {}))
        for a in r["Aliases"]:
            aliases[a["AliasName"]] = a.get("TargetKeyId")
        if not r.get("Truncated"):
            break
        marker = r["NextMarker"]
    for name, kid in ledger.aliases.items():
        if aliases.get(name) != kid:
            lost.append(f"alias {name}: {aliases.get(name)!r}, acknowledged {kid!r}")
    decrypted = 0
    for kid, blob, pt, ctx in ledger.ciphertexts:
        want = ledger.keys.get(kid, {})
        if want.get("pending_deletion") or not want.get("enabled", True):
            continue  # not decryptable by design; the key's state was checked above
        try:
            got = c.decrypt(CiphertextBlob=blob, EncryptionContext=ctx)["Plaintext"]
        except ClientError as e:
            lost.append(f"ciphertext of {kid}: {e}")
            continue
        if got != pt:
            lost.append(f"ciphertext of {kid}: other plaintext")
        decrypted += 1
    return lost, decrypted


def main():
    ap = argparse.ArgumentParser()
    for a in ["server", "config", "faults", "token", "log", "report"]:
        ap.add_argument("--" + a, required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--seconds", type=int, required=True)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--fault-period", type=float, default=60)
    ap.add_argument("--rss-growth-mb", type=float, default=48)
    ap.add_argument("--keys-per-client", type=int, default=25)
    args = ap.parse_args()

    server = start_server(args)
    ledger = Ledger()
    stop = threading.Event()
    events = []
    threads = [threading.Thread(target=worker, args=(n, args, ledger, stop), daemon=True) for n in range(args.clients)]
    threads.append(threading.Thread(target=faults, args=(args, stop, events), daemon=True))
    started = time.time()
    for t in threads:
        t.start()
    samples = []
    step = max(1.0, min(10.0, args.seconds / 60))
    while time.time() - started < args.seconds:
        if server.poll() is not None:
            stop.set()
            sys.exit(f"FAIL: the server exited during the soak (status {server.returncode}); see {args.log}")
        samples.append((round(time.time() - started, 1), rss_kib(server.pid)))
        time.sleep(step)
    stop.set()
    for t in threads:
        t.join(timeout=60)
    for f in os.listdir(args.faults):
        if f.startswith(args.token + "."):
            os.unlink(os.path.join(args.faults, f))
    time.sleep(1)
    final_rss = rss_kib(server.pid)
    samples.append((round(time.time() - started, 1), final_rss))

    # Kill without warning, restart, and read everything back.
    server.send_signal(signal.SIGKILL)
    server.wait()
    server = start_server(args)
    lost, decrypted = verify(args, ledger)
    server.send_signal(signal.SIGTERM)
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()

    warm = [s for s in samples if s[0] >= args.seconds * 0.1] or samples
    base_kib = warm[0][1]
    growth_mb = (final_rss - base_kib) / 1024
    total = sum(v["ok"] + sum(v["errors"].values()) for v in ledger.counts.values())
    report = {
        "seconds": args.seconds,
        "clients": args.clients,
        "requests": total,
        "requests_per_second": round(total / args.seconds, 1),
        "operations": ledger.counts,
        "fault_episodes": len(events),
        "faults": [e["fault"] for e in events],
        "rss_kib": {"first": samples[0][1], "after_warmup": base_kib, "max": max(s[1] for s in samples), "final": final_rss},
        "rss_growth_mib_after_warmup": round(growth_mb, 1),
        "rss_samples": samples,
        "acknowledged": {
            "keys": len(ledger.keys),
            "aliases": sum(1 for v in ledger.aliases.values() if v),
            "aliases_deleted": sum(1 for v in ledger.aliases.values() if v is None),
            "ciphertexts": len(ledger.ciphertexts),
            "ciphertexts_decrypted_after_restart": decrypted,
        },
        "lost_writes": lost[:50],
        "lost_write_count": len(lost),
    }
    with open(args.report, "w") as f:
        json.dump(report, f, indent=1)
    summary = {k: v for k, v in report.items() if k != "rss_samples"}
    print(json.dumps(summary, indent=1))
    failed = False
    if lost:
        print(f"FAIL: {len(lost)} acknowledged write(s) lost", file=sys.stderr)
        failed = True
    if growth_mb > args.rss_growth_mb:
        print(f"FAIL: resident memory grew {growth_mb:.1f} MiB after warm-up (limit {args.rss_growth_mb})", file=sys.stderr)
        failed = True
    if "DecryptMismatch" in ledger.counts:
        print("FAIL: a Decrypt returned other bytes than were encrypted", file=sys.stderr)
        failed = True
    if total == 0:
        print("FAIL: no request was made", file=sys.stderr)
        failed = True
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
