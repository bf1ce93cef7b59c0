"""A test double of the Consul agent HTTP API, faithful to the parts ScoreMesh uses.

Documented Consul behaviour it follows:
- `PUT /v1/agent/service/register` (case-insensitive JSON keys, `Check`/`Checks`), re-registering
  an ID replaces it; `PUT /v1/agent/service/deregister/<id>` removes it and its checks.
- Checks start `critical`; a gRPC check calls grpc.health.v1 `Check` on its target every
  `Interval` and is `passing` only on SERVING; a TTL check is `passing` for `TTL` after each
  `PUT /v1/agent/check/pass/<id>` and `critical` after; `DeregisterCriticalServiceAfter` removes
  a service whose check stayed critical that long (real agents reap every ~30 s, the double at
  once).
- `GET /v1/health/service/<name>` returns Node/Service/Checks entries; `?passing` keeps only
  entries whose checks all pass; `?index=N&wait=D` blocks until the index moves past N or D
  elapses; every answer carries `X-Consul-Index`, which moves on every change.
- `GET /v1/catalog/services` maps service names to their tags.
- `PUT /v1/kv/<key>` stores the raw body; `GET /v1/kv/<key>` answers it base64-encoded with its
  ModifyIndex (404 when absent), blocking like the other reads.
- ACLs (default policy deny, as a secured agent): with a token configured, a request without
  `X-Consul-Token` or with another token is answered 403 "ACL not found" and changes nothing;
  the tokens each request carried are kept in `tokens_seen`.
- A gRPC check with `GRPCUseTLS` probes over TLS with the agent's own certificate (`grpc_tls`);
  an agent without one fails such checks, as a real agent without TLS configuration does.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h)$")


def parse_duration(text: str) -> float:
    match = _DURATION.match(text or "")
    if not match:
        raise ValueError(f"bad duration {text!r}")
    value, unit = float(match.group(1)), match.group(2)
    return value * {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}[unit]


def _lower_keys(value):
    if isinstance(value, dict):
        return {k.lower(): (_lower_keys(v) if k.lower() in ("check", "checks") else v) for k, v in value.items()}
    if isinstance(value, list):
        return [_lower_keys(v) for v in value]
    return value


class ConsulDouble:
    def __init__(self, token: str | None = None, grpc_tls=None) -> None:
        self.token = token
        self.tokens_seen: list[str | None] = []
        self.grpc_tls = grpc_tls  # mesh.tls.TlsMaterial of the agent, for TLS gRPC checks
        self.services: dict[str, dict] = {}
        self.kv: dict[str, tuple[bytes, int]] = {}  # key -> (value, modify index)
        self.index = 1
        self.changed = threading.Condition()
        self._stop = threading.Event()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self._threads = [
            threading.Thread(target=self.httpd.serve_forever, daemon=True),
            threading.Thread(target=self._run_checks, daemon=True),
        ]
        self._channels: dict[tuple[str, bool], grpc.Channel] = {}

    # ---- state changes (always under self.changed) --------------------------------------------
    def _bump(self) -> None:
        self.index += 1
        self.changed.notify_all()

    def register(self, body: dict) -> None:
        body = _lower_keys(body)
        service_id = body.get("id") or body["name"]
        checks_in = body.get("checks") or ([body["check"]] if body.get("check") else [])
        checks = []
        for n, check in enumerate(checks_in):
            checks.append(
                {
                    "CheckID": check.get("checkid") or f"service:{service_id}" + (f":{n + 1}" if len(checks_in) > 1 else ""),
                    "Name": check.get("name") or f"Service '{body['name']}' check",
                    "Status": "critical",
                    "Output": "",
                    "grpc": check.get("grpc"),
                    "grpc_use_tls": bool(check.get("grpcusetls") or check.get("grpc_use_tls")),
                    "interval": parse_duration(check["interval"]) if check.get("interval") else None,
                    "ttl": parse_duration(check["ttl"]) if check.get("ttl") else None,
                    "deregister_after": parse_duration(check["deregistercriticalserviceafter"]) if check.get("deregistercriticalserviceafter") else None,
                    "critical_since": time.monotonic(),
                    "next_run": time.monotonic(),
                    "ttl_expires": None,
                }
            )
        with self.changed:
            self.services[service_id] = {
                "ID": service_id,
                "Service": body["name"],
                "Tags": body.get("tags") or [],
                "Address": body.get("address") or "127.0.0.1",
                "Port": int(body.get("port") or 0),
                "Meta": body.get("meta") or {},
                "checks": checks,
            }
            self._bump()

    def maintenance(self, service_id: str, enable: bool, reason: str) -> bool:
        """Consul's maintenance mode: a critical `_service_maintenance:<id>` check while on, the
        reason in its Notes."""
        with self.changed:
            service = self.services.get(service_id)
            if service is None:
                return False
            check_id = f"_service_maintenance:{service_id}"
            service["checks"] = [c for c in service["checks"] if c["CheckID"] != check_id]
            if enable:
                service["checks"].append({"CheckID": check_id, "Name": "Service Maintenance Mode", "Status": "critical",
                                          "Notes": reason, "Output": "", "grpc": None, "ttl": None, "deregister_after": None,
                                          "critical_since": None, "next_run": float("inf"), "ttl_expires": None})
            self._bump()
            return True

    def deregister(self, service_id: str) -> bool:
        with self.changed:
            if self.services.pop(service_id, None) is None:
                return False
            self._bump()
            return True

    def _set_status(self, check: dict, status: str, output: str) -> None:
        if check["Status"] != status:
            check["Status"] = status
            check["Output"] = output
            check["critical_since"] = time.monotonic() if status == "critical" else None
            self._bump()

    def ttl_pass(self, check_id: str) -> bool:
        with self.changed:
            for service in self.services.values():
                for check in service["checks"]:
                    if check["CheckID"] == check_id and check["ttl"]:
                        check["ttl_expires"] = time.monotonic() + check["ttl"]
                        self._set_status(check, "passing", "TTL passed")
                        return True
        return False

    def _probe(self, target: str, use_tls: bool) -> tuple[str, str]:
        address, _, service = target.partition("/")
        channel = self._channels.get((address, use_tls))
        if channel is None:
            if use_tls and self.grpc_tls is not None:
                credentials = grpc.ssl_channel_credentials(self.grpc_tls.ca, self.grpc_tls.key, self.grpc_tls.cert)
                channel = grpc.secure_channel(address, credentials)
            elif use_tls:
                return "critical", f"gRPC check {target}: TLS asked but the agent has no TLS configuration"
            else:
                channel = grpc.insecure_channel(address)
            self._channels[(address, use_tls)] = channel
        try:
            response = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service), timeout=1.0)
        except grpc.RpcError as error:
            return "critical", f"gRPC check {target}: {error.code().name}"
        status = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
        return ("passing" if status == "SERVING" else "critical"), f"gRPC check {target}: {status}"

    def _run_checks(self) -> None:
        while not self._stop.wait(0.05):
            now = time.monotonic()
            with self.changed:
                due = [(s, c) for s in self.services.values() for c in s["checks"] if c["grpc"] and c["next_run"] <= now]
                for _, check in due:
                    check["next_run"] = now + (check["interval"] or 10.0)
            results = [(s["ID"], c, *self._probe(c["grpc"], c["grpc_use_tls"])) for s, c in due]  # outside the lock
            with self.changed:
                for service_id, check, status, output in results:
                    if service_id in self.services:
                        self._set_status(check, status, output)
                for service in list(self.services.values()):
                    for check in service["checks"]:
                        if check["ttl"] and check["Status"] == "passing" and check["ttl_expires"] < now:
                            self._set_status(check, "critical", "TTL expired")
                        limit = check["deregister_after"]
                        if limit and check["Status"] == "critical" and now - check["critical_since"] > limit:
                            self.services.pop(service["ID"], None)
                            self._bump()
                            break

    # ---- reads --------------------------------------------------------------------------------
    def wait_for(self, index: int, wait_s: float) -> None:
        with self.changed:
            self.changed.wait_for(lambda: self.index > index, timeout=wait_s)

    def health(self, name: str, passing: bool) -> list[dict]:
        with self.changed:
            entries = []
            for service in self.services.values():
                if service["Service"] != name:
                    continue
                checks = [
                    {"Node": "consul-double", "CheckID": c["CheckID"], "Name": c["Name"], "Status": c["Status"],
                     "Output": c["Output"], "Notes": c.get("Notes", ""), "ServiceID": service["ID"], "ServiceName": name}
                    for c in service["checks"]
                ]
                if passing and any(c["Status"] != "passing" for c in checks):
                    continue
                entries.append({
                    "Node": {"Node": "consul-double", "Address": "127.0.0.1"},
                    "Service": {k: service[k] for k in ("ID", "Service", "Tags", "Address", "Port", "Meta")},
                    "Checks": checks,
                })
            return entries

    def catalog(self) -> dict[str, list[str]]:
        with self.changed:
            out: dict[str, list[str]] = {}
            for service in self.services.values():
                out.setdefault(service["Service"], [])
                out[service["Service"]] = sorted(set(out[service["Service"]]) | set(service["Tags"]))
            return out

    # ---- HTTP -----------------------------------------------------------------------------------
    def _handler(self):
        double = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _reply(self, status: int, payload) -> None:
                body = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("X-Consul-Index", str(double.index))
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _denied(self) -> bool:
                token = self.headers.get("X-Consul-Token")
                with double.changed:
                    double.tokens_seen.append(token)
                if double.token is not None and token != double.token:
                    self._reply(403, "ACL not found")
                    return True
                return False

            def do_PUT(self):
                if self._denied():
                    return None
                url = urlparse(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                if url.path.startswith("/v1/kv/"):  # the value is the raw body, not JSON
                    with double.changed:
                        double.kv[url.path[len("/v1/kv/"):]] = (raw, double.index + 1)
                        double._bump()
                    return self._reply(200, True)
                body = json.loads(raw or b"{}") if length else {}
                if url.path == "/v1/agent/service/register":
                    try:
                        double.register(body)
                    except (KeyError, ValueError) as error:
                        return self._reply(400, f"Request decode failed: {error}")
                    return self._reply(200, True)
                if url.path.startswith("/v1/agent/service/deregister/"):
                    found = double.deregister(url.path.rsplit("/", 1)[1])
                    return self._reply(200 if found else 404, found)
                if url.path.startswith("/v1/agent/service/maintenance/"):
                    query = parse_qs(url.query)
                    found = double.maintenance(url.path.rsplit("/", 1)[1], query.get("enable", ["false"])[0] in ("1", "t", "T", "true", "TRUE", "True"),  # Go's ParseBool
                                               query.get("reason", [""])[0])
                    return self._reply(200 if found else 404, found)
                if url.path.startswith("/v1/agent/check/pass/"):
                    found = double.ttl_pass(url.path.rsplit("/", 1)[1])
                    return self._reply(200 if found else 404, found)
                return self._reply(404, "not found")

            def do_GET(self):
                if self._denied():
                    return None
                url = urlparse(self.path)
                query = parse_qs(url.query, keep_blank_values=True)
                if "index" in query:
                    double.wait_for(int(query["index"][0]), parse_duration(query.get("wait", ["5m"])[0]))
                if url.path.startswith("/v1/health/service/"):
                    return self._reply(200, double.health(url.path.rsplit("/", 1)[1], "passing" in query))
                if url.path == "/v1/catalog/services":
                    return self._reply(200, double.catalog())
                if url.path.startswith("/v1/kv/"):
                    key = url.path[len("/v1/kv/"):]
                    with double.changed:
                        entry = double.kv.get(key)
                    if entry is None:
                        return self._reply(404, None)
                    value, modified = entry
                    return self._reply(200, [{"Key": key, "Value": base64.b64encode(value).decode(), "Flags": 0,
                                              "CreateIndex": modified, "ModifyIndex": modified, "LockIndex": 0}])
                return self._reply(404, "not found")

        return Handler

    def start(self) -> "ConsulDouble":
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        for channel in self._channels.values():
            channel.close()
