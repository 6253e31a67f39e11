import json
MS = 1_000_000
def e(kind, p, f, v, t, node=None):
    d = {"type": kind, "process": p, "f": f, "value": v, "time": int(t * MS)}
    if node: d["node"] = node
    return d
def log(f, lock, token, index):
    return e("ok", "log", f, {"lock": lock, "token": token, "lease": token, "index": index}, 100)
def final(key, value, token):
    return e("ok", "final", "read", {"key": key, "value": value, "token": token, "version": token}, 100)
def acq(p, lock, token, t0, t1, node="n1"):
    return [e("invoke", p, "acquire", {"lock": lock}, t0), e("ok", p, "acquire", {"lock": lock, "token": token, "lease": token}, t1, node)]
def write(p, key, token, value, t0, t1, outcome="ok", extra=None):
    inv = {"key": key, "token": token, "value": value}
    done = dict(inv)
    if extra: done.update(extra)
    return [e("invoke", p, "write", inv, t0), e(outcome, p, "write", done, t1)]
def rel(p, lock, token, t0, t1):
    return [e("invoke", p, "release", {"lock": lock, "token": token}, t0), e("ok", p, "release", {"lock": lock, "token": token}, t1)]
def save(name, events, expect):
    with open(name + ".jsonl", "w") as f:
        for ev in events:
            f.write(json.dumps(ev, separators=(",", ":")) + "\n")
    with open(name + ".expect", "w") as f:
        f.write(expect.strip() + "\n")
ALL_VALID = "\n".join(f"{p} valid" for p in ["S1","S2","S3","S4","S5","S7","L1"])
def expect(**kw):
    lines = []
    for p in ["S1","S2","S3","S4","S5","S7","L1"]:
        lines.append(f"{p} {kw.get(p, 'valid')}")
    return "\n".join(lines)

# DDIA Figure 8-4 / 8-5: client 1 gets token 33, is paused past its lease; the
# lease expires (log index 34); client 2 gets token 35 and writes; client 1
# wakes up and writes with 33. After the pause ends, client 2 releases and
# client 1 acquires again, so L1 has an acquire to judge.
def figure(accept_stale):
    ev = []
    ev += acq(1, "file", 33, 1, 2)
    ev.append(e("info", "nemesis", "start", {"fault": "pause", "targets": ["client-1"]}, 3))
    ev += acq(2, "file", 35, 20, 21)
    ev += write(2, "file", 35, "client 2", 22, 23)
    ev.append(e("info", "nemesis", "stop", {"fault": "pause", "targets": ["client-1"], "majority_up": True}, 30))
    if accept_stale:
        ev += write(1, "file", 33, "client 1", 31, 32)
    else:
        ev += write(1, "file", 33, "client 1", 31, 32, "fail", {"code": "stale_token", "current": 35})
    ev += rel(2, "file", 35, 40, 41)
    ev += acq(1, "file", 37, 42, 43)
    ev += [log("grant", "file", 33, 33), log("expire", "file", 33, 34), log("grant", "file", 35, 35),
           log("release", "file", 35, 36), log("grant", "file", 37, 37)]
    ev.append(final("file", "client 1" if accept_stale else "client 2", 33 if accept_stale else 35))
    return ev
save("fig-8-4-unfenced", figure(True), expect(S3="invalid", S5="invalid"))
save("fig-8-5-fenced", figure(False), expect())

# S1: two ok acquires with one token.
ev = acq(1, "a", 5, 1, 2) + acq(2, "b", 5, 3, 4) + [log("grant", "a", 5, 5), log("grant", "b", 5, 5)]
save("s1-duplicate-token", ev, expect(S1="invalid", S2="invalid"))

# S1: two winners of one claim.
ev = [e("invoke", 1, "claim", {"name": "leader", "owner": "p1"}, 1), e("invoke", 2, "claim", {"name": "leader", "owner": "p2"}, 1.5),
      e("ok", 1, "claim", {"name": "leader", "owner": "p1"}, 2), e("ok", 2, "claim", {"name": "leader", "owner": "p2"}, 3)]
save("s1-two-claim-winners", ev, expect(S1="invalid", S4="unknown", L1="unknown"))

# S2: a later acquire got a lower token.
ev = acq(1, "a", 9, 1, 2) + rel(1, "a", 9, 3, 4) + acq(2, "a", 7, 5, 6)
ev += [log("grant", "a", 9, 9), log("release", "a", 9, 10), log("grant", "a", 7, 7)]
save("s2-token-went-back", ev, expect(S2="invalid"))

# S2: concurrent acquires may get tokens in either order.
ev = [e("invoke", 1, "acquire", {"lock": "a"}, 1), e("invoke", 2, "acquire", {"lock": "b"}, 2),
      e("ok", 2, "acquire", {"lock": "b", "token": 3, "lease": 3}, 3), e("ok", 1, "acquire", {"lock": "a", "token": 4, "lease": 4}, 4),
      e("invoke", 3, "acquire", {"lock": "a"}, 5), e("fail", 3, "acquire", {"lock": "a", "reason": "held"}, 6),
      log("grant", "b", 3, 3), log("grant", "a", 4, 4)]
save("s2-concurrent-ok", ev, expect())

# S3: two concurrent writes, the older token acknowledged last: not certain.
ev = acq(1, "k", 4, 0, 0.5) + acq(2, "k2", 6, 0.6, 0.7)
ev += [e("invoke", 1, "write", {"key": "k", "lock": "k", "token": 4, "value": "a"}, 1),
       e("invoke", 2, "write", {"key": "k", "lock": "k", "token": 6, "value": "b"}, 2),
       e("ok", 2, "write", None, 3), e("ok", 1, "write", None, 4)]
ev += [log("grant", "k", 4, 4), log("expire", "k", 4, 5), log("grant", "k", 6, 6)]
ev.append(final("k", "b", 6))
# process 2's grant above is for "k2" in the client's eyes but the log says
# "k": keep the client consistent with the log.
ev[2]["value"]["lock"] = "k"; ev[3]["value"]["lock"] = "k"
save("s3-concurrent-ok", ev, expect())

# S3 under a guard (`--guard svc/=svc`): the store fences by lock, so a stale
# holder's write of *another* key under the prefix is a violation as well.
def guarded(stale_outcome):
    ev = acq(1, "svc", 14, 1, 2) + acq(2, "svc", 29, 5, 6)
    ev += write(2, "svc/config", 29, "b", 7, 8)
    ev += write(1, "svc/orders-2", 14, "a", 9, 10, stale_outcome,
                {"code": "stale_token", "current": 29} if stale_outcome == "fail" else None)
    for w in ev:
        if w["f"] == "write" and w["type"] == "invoke":
            w["value"]["lock"] = "svc"
    ev += [log("grant", "svc", 14, 14), log("expire", "svc", 14, 15), log("grant", "svc", 29, 29)]
    ev.append(final("svc/config", "b", 29))
    ev.append(final("svc/orders-2", "a", 14) if stale_outcome == "ok" else final("svc/orders-2", None, 0))
    return ev
save("s3-guarded-prefix-stale-create", guarded("ok"), expect(S3="invalid"))
save("s3-guarded-prefix-fenced", guarded("fail"), expect())

# S4: the log grants a held lock.
ev = acq(1, "a", 3, 1, 2) + acq(2, "a", 4, 3, 4) + [log("grant", "a", 3, 3), log("grant", "a", 4, 4)]
save("s4-double-grant", ev, expect(S4="invalid"))

# S5: an acknowledged grant missing from the log; S7 with no writes is valid.
ev = acq(1, "a", 3, 1, 2) + acq(2, "b", 8, 3, 4) + [log("grant", "a", 3, 3)]
save("s5-lost-grant", ev, expect(S5="invalid"))

# S5: two replicas hold different entries at an index both had committed.
# The grant the client saw is in the log that was read back, yet which
# replica is asked decides what the log says: invalid on the divergence alone.
ev = acq(1, "a", 3, 1, 2) + [log("grant", "a", 3, 3),
    e("ok", "log", "diverged", {"index": 3, "detail": "n1 holds t1 grant a, n2 holds t1 release b"}, 100)]
save("s5-diverged-logs", ev, expect(S5="invalid"))

# S5, S4 and S7 cannot be judged without the log and final reads.
ev = acq(1, "a", 3, 1, 2) + write(1, "a", 3, "x", 3, 4)
save("s5-no-log", ev, expect(S4="unknown", S5="unknown", S7="unknown"))

# S7: a forged token, and a token issued for another lock.
ev = acq(1, "a", 3, 1, 2) + write(1, "a", 3, "x", 3, 4) + write(2, "a", 99, "forged", 5, 6) + write(3, "b", 3, "borrowed", 7, 8)
ev += [log("grant", "a", 3, 3)]
ev += [final("a", "forged", 99), final("b", "borrowed", 3)]
save("s7-forged-and-borrowed", ev, expect(S7="invalid"))

# L1: after the heal, one acquire takes 12 s (bound 10 s), one finds the lock
# held (excused).
ev = [e("info", "nemesis", "start", {"fault": "partition", "targets": ["n1", "n2"]}, 1),
      e("info", "nemesis", "stop", {"fault": "heal-all", "majority_up": True}, 100)]
ev += acq(1, "a", 3, 200, 12_200)
ev += [e("invoke", 2, "acquire", {"lock": "a"}, 12_300), e("fail", 2, "acquire", {"lock": "a", "reason": "held"}, 12_301)]
ev += [log("grant", "a", 3, 3)]
save("l1-slow-after-heal", ev, expect(L1="invalid"))

# L1: the last heal leaves no majority: availability is not promised.
ev = [e("info", "nemesis", "start", {"fault": "kill", "targets": ["n1", "n2"]}, 1),
      e("info", "nemesis", "stop", {"fault": "kill", "majority_up": False}, 100)]
ev += [e("invoke", 1, "acquire", {"lock": "a"}, 200), e("info", 1, "acquire", None, 60_200)]
save("l1-no-majority", ev, expect(S4="unknown", L1="unknown"))

# S3 per mode (docs/primitives.md). A log grant with a mode (and a slot).
def mlog(lock, token, mode, slot=None):
    v = {"lock": lock, "token": token, "lease": token, "index": token, "mode": mode}
    if slot is not None: v["slot"] = slot
    return e("ok", "log", "grant", v, 100)
def macq(p, lock, token, t0, t1, mode, slot=None):
    v = {"lock": lock, "token": token, "lease": token, "mode": mode}
    if slot is not None: v["slot"] = slot
    return [e("invoke", p, "acquire", {"lock": lock, "mode": mode}, t0), e("ok", p, "acquire", v, t1, "n1")]
def fread(p, key, fence, seen, t0, t1, outcome="ok", lock=None):
    inv = {"key": key, "fence": fence, "lock": lock or key}
    done = {"key": key, "value": "v" if seen else None, "token": seen, "version": seen} if outcome == "ok" \
        else {"key": key, "code": "stale_token", "current": 12}
    return [e("invoke", p, "read", inv, t0), e(outcome, p, "read", done, t1)]

# A shared grant's token accepted for a write: writes need an exclusive one.
def shared_write(accepted):
    ev = macq(1, "doc", 5, 1, 2, "shared")
    ev += write(1, "doc", 5, "x", 3, 4, "ok" if accepted else "fail",
                None if accepted else {"code": "bad_token", "message": "a shared grant's token cannot write"})
    ev[2]["value"]["mode"] = "shared"
    ev += [mlog("doc", 5, "shared")]
    ev.append(final("doc", "x", 5) if accepted else final("doc", None, 0))
    return ev
save("s3-shared-token-wrote", shared_write(True), expect(S3="invalid"))
save("s3-shared-token-refused", shared_write(False), expect())

# A reader (shared, token 10) outlives its grant; a writer (12) writes; the
# old reader's fenced read is then served (broken) or refused (fenced). A
# later reader (14) reads fenced: fine.
def stale_read(served):
    ev = macq(1, "cat", 10, 1, 2, "shared") + acq(2, "cat", 12, 5, 6)
    ev += write(2, "cat", 12, "v", 7, 8)
    ev += fread(1, "cat", 10, 12, 9, 10, "ok" if served else "fail")
    ev += macq(3, "cat", 14, 11, 12, "shared") + fread(3, "cat", 14, 12, 13, 14)
    ev += [mlog("cat", 10, "shared"), log("expire", "cat", 10, 11), log("grant", "cat", 12, 12),
           log("release", "cat", 12, 13), mlog("cat", 14, "shared")]
    ev.append(final("cat", "v", 12))
    return ev
save("s3-stale-fenced-read-served", stale_read(True), expect(S3="invalid"))
save("s3-stale-fenced-read-refused", stale_read(False), expect())

# Permits write their slot's keys (lock `pool#SLOT`). Per slot, a token never
# goes back; across slots, lower tokens after higher ones are fine.
def slots(went_back):
    ev = [e("ok", "log", "permits", {"lock": "pool", "token": 1, "index": 1, "permits": 2}, 100)]
    ev += macq(1, "pool", 5, 1, 2, "permit", 0) + macq(2, "pool", 6, 3, 4, "permit", 1)
    ev += write(2, "pool/1/c", 6, "b", 5, 6) + write(1, "pool/0/c", 5, "a", 7, 8)
    ev += macq(3, "pool", 9, 9, 10, "permit", 1) + write(3, "pool/1/c", 9, "c", 11, 12)
    if went_back:  # the expired permit 6 of slot 1 writes after 9 did
        ev += write(2, "pool/1/c", 6, "late", 13, 14)
    else:
        ev += write(2, "pool/1/c", 6, "late", 13, 14, "fail", {"code": "stale_token", "current": 9})
    for w in ev:
        if w["f"] == "write" and w["type"] == "invoke":
            w["value"]["lock"] = "pool#" + w["value"]["key"].split("/")[1]
            w["value"]["mode"] = "permit"
    ev += [mlog("pool", 5, "permit", 0), mlog("pool", 6, "permit", 1), log("expire", "pool", 6, 7),
           mlog("pool", 9, "permit", 1)]
    ev += [final("pool/0/c", "a", 5), final("pool/1/c", "late" if went_back else "c", 6 if went_back else 9)]
    return ev
save("s3-permit-slot-went-back", slots(True), expect(S3="invalid", S5="invalid"))
save("s3-permit-slots-fenced", slots(False), expect())

# Bad input.
def bad(name, text, line, needle):
    with open(name + ".jsonl", "w") as f:
        f.write(text)
    with open(name + ".expect", "w") as f:
        f.write(f"error line {line} {needle}\n")
good = [json.dumps(x, separators=(",", ":")) for x in acq(1, "a", 3, 1, 2)]
bad("bad-truncated", good[0] + "\n" + good[1][:40], 2, "truncated")
bad("bad-unknown-field", good[0] + "\n" + good[1][:-1] + ',"tokn":3}\n', 2, "unknown field `tokn`")
bad("bad-orphan-completion", good[1] + "\n", 1, "no matching invoke")
bad("bad-type", good[0].replace('"invoke"', '"invok"') + "\n", 1, "expected invoke, ok, fail or info")
bad("bad-completion-first", good[1] + "\n" + good[0] + "\n", 1, "no matching invoke")
bad("bad-missing-token", good[0] + "\n\n" + good[1].replace('"token":3,', "") + "\n", 3, "no integer field `token`")
