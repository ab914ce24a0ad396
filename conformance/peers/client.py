"""A client-mode peer in Python, stdlib only: the contract of docs/CONFORMANCE.md in
another language. It reads the plan, makes each call with retries as PROTOCOL.md §5
and §7 say, and prints one outcome line per call.

    intercall-conformance client [--secret S] -- python3 conformance/peers/client.py
"""
import hashlib, hmac, json, os, random, sys, time, uuid
import http.client, urllib.parse

base = urllib.parse.urlsplit(os.environ["INTERCALL_CONFORMANCE_URL"])
plan = json.loads(os.environ["INTERCALL_CONFORMANCE_PLAN"])
secret = os.environ.get("INTERCALL_CONFORMANCE_SECRET")
timeout = plan["timeout_ms"] / 1000
activities = {}
# Each kind's own status (§4.2): a known kind at another status is not intercall's body.
KINDS = {"service": 422, "bad_request": 400, "unknown_service": 404, "unknown_method": 404,
         "method_not_allowed": 405, "payload_too_large": 413, "unsupported_media_type": 415,
         "panic": 500, "internal": 500, "in_progress": 409, "call_id_mismatch": 422,
         "store_unavailable": 503, "unauthorized": 401, "deadline_exceeded": 504, "overloaded": 503}

def attempt(method, body, headers):
    conn = http.client.HTTPConnection(base.hostname, base.port, timeout=timeout)  # never follows redirects
    try:
        conn.request("POST", base.path.rstrip("/") + "/Conformance/" + method, body, headers)
        reply = conn.getresponse()
        ctype = reply.getheader("content-type") or ""
        if reply.status == 200 and ctype.split(";")[0].strip().lower() == "application/x-ndjson":
            return reply.status, ctype, None, read_stream(reply)
        return reply.status, ctype, reply.getheader("retry-after"), reply.read()
    finally:
        conn.close()

def read_stream(reply):
    """A stream (PROTOCOL.md §4.3), read frame by frame: its items printed as they come,
    and how it ended. Never retried once its reply came."""
    case, buffered = current["case"], b""
    while True:
        try:
            chunk = reply.read1(65536)
        except (OSError, http.client.HTTPException):
            return "failure connect"  # cut mid-stream
        if not chunk:
            return "failure connect"  # the body ended without a final frame
        buffered += chunk
        while b"\n" in buffered:
            line, buffered = buffered.split(b"\n", 1)
            try:
                frame = json.loads(line)
            except ValueError:
                return "failure decode"
            if not isinstance(frame, dict):
                return "failure decode"
            if "item" in frame:
                if not isinstance(frame["item"], int):
                    return "failure decode"
                print("ITEM", case, json.dumps(frame["item"]), flush=True)
            elif frame.get("end") == "ok":
                return "ok null"
            elif frame.get("end") == "error":
                error = frame.get("error") or {}
                kind = error.get("kind")
                if kind == "service" and error.get("value") == "Refused":
                    return 'error "Refused"'
                if kind == "deadline_exceeded":
                    return "failure timeout 504"
                return "failure status %d" % KINDS.get(kind, 500) if kind != "service" else "failure decode"
            # anything else (a keep-alive `{}`, a frame kind this reader does not know): skipped

def call(c):
    body = json.dumps(c["args"]).encode()
    user = c["user"] or {}
    activity = activities.setdefault(c["activity"], str(uuid.uuid4())) if c["activity"] else str(uuid.uuid4())
    headers = {"content-type": "application/json", "accept": "application/json",
               "x-call-id": str(uuid.uuid4()), "x-activity-id": activity}
    if user:
        headers["x-user-type"] = user["type"]
        if user.get("id"):
            headers["x-user-id"] = user["id"]
    failure = "failure other"
    for n in range(1, 4):
        headers["x-call-attempt"] = str(n)
        headers["x-deadline-ms"] = str(int(timeout * 1000) - 50)
        if secret:
            ts = str(int(time.time() * 1000))
            canonical = "\n".join(["intercall-v1", "Conformance/" + c["method"], ts, headers["x-call-id"],
                                   headers.get("x-user-type", ""), headers.get("x-user-id", ""),
                                   headers["x-activity-id"], hashlib.sha256(body).hexdigest()])
            headers["x-intercall-timestamp"] = ts
            headers["x-intercall-signature"] = "v1=" + hmac.new(secret.encode(), canonical.encode(), hashlib.sha256).hexdigest()
        wait = random.uniform(0, 0.05 * 2 ** (n - 1))
        try:
            status, ctype, retry_after, raw = attempt(c["method"], body, headers)
        except (OSError, http.client.HTTPException):
            failure = "failure connect"
        else:
            if isinstance(raw, str):
                return raw  # a stream's end
            try:
                reply, decoded = json.loads(raw), True
            except ValueError:
                reply, decoded = None, False
            # A result is only a 200 with a JSON content type; any other 200 does not decode (§7).
            if status == 200:
                echo_shape = isinstance(reply, dict) and isinstance(reply.get("text"), str)
                is_json = ctype.split(";")[0].strip().lower() == "application/json"
                if not is_json or not decoded or c["method"] == "echo" and not echo_shape:
                    return "failure decode"
                return "ok " + json.dumps(reply, separators=(",", ":"))
            kind = reply.get("kind") if isinstance(reply, dict) else None
            if not (isinstance(kind, str) and isinstance(reply.get("message"), str)) or KINDS.get(kind, status) != status:
                kind = None  # not an intercall error body: a gateway's, a balancer's, a layer's (§4.2)
            # A typed error is only a 422 whose kind is `service` (§7).
            if status == 422 and kind == "service" and "value" in reply:
                value = reply["value"]
                if value == "Refused" or isinstance(value, dict) and list(value) in (["NotFound"], ["Invalid"]):
                    return "error " + json.dumps(value, separators=(",", ":"))
                return "failure decode"
            # A gateway's or a timeout layer's 504 or 408 is a timeout (§7).
            failure = "failure %s %d" % ("timeout" if status in (408, 504) and kind is None else "status", status)
            # Retry only what a retry can fix (§5): an intermediary's reply has no kind we know.
            intermediary = status in (408, 429, 502, 503, 504) and kind not in KINDS
            if not (intermediary or (status, kind) in ((409, "in_progress"), (503, "store_unavailable"), (503, "overloaded"))):
                return failure
            if retry_after and retry_after.isdigit():
                wait = max(wait, int(retry_after))
        if n < 3:
            time.sleep(wait)
    return failure

current = None
for c in plan["calls"]:
    current = c
    print("CALL", c["case"], call(c), flush=True)
