"""lem-plugin-pyexample: a lemctl energy plugin written in Python, without the Go sdk.

It simulates one constant-power meter: a single domain whose energy counter is exactly
power_w x elapsed time on CLOCK_MONOTONIC, so `lemctl measure --meter pyexample` has a known
answer. It speaks the contract of docs/protocol.md by itself: the go-plugin handshake line on
stdout, AutoMTLS, the health, controller and stdio services, and lem.plugin.v1 + lem.energy.v1.

It never writes to stdout after the handshake line (stdout belongs to the handshake), logs JSON
lines on stderr, and exits when lemctl dies or asks it to shut down.
"""

import base64
import datetime
import json
import os
import re
import select
import signal
import sys
import tempfile
import threading
import time
import uuid
from concurrent import futures

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "gen"))

import grpc  # noqa: E402  (python3-grpcio)
from cryptography import x509  # noqa: E402  (python3-cryptography)
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID  # noqa: E402

from goplugin import controller_pb2, controller_pb2_grpc, health_pb2, health_pb2_grpc  # noqa: E402
from lem.energy.v1 import energy_pb2, energy_pb2_grpc  # noqa: E402
from lem.plugin.v1 import plugin_pb2, plugin_pb2_grpc  # noqa: E402

NAME = "pyexample"
VERSION = "0.1.0"
API_VERSION = 1  # lemctl's plugin protocol version (APP-PROTOCOL-VERSION of the handshake)
CORE_PROTOCOL_VERSION = 1  # go-plugin's own protocol version
MAGIC_COOKIE_KEY = "LEM_PLUGIN_MAGIC_COOKIE"
MAGIC_COOKIE_VALUE = "lemctl-plugin-3f6c1b2e9d"
HEALTH_SERVICE = "plugin"  # the service name go-plugin's health check asks about
CHUNK_BYTES = 1 << 20  # the largest payload one streamed message carries
MAX_MESSAGE_BYTES = 256 << 20
MIN_INTERVAL_NS = 1_000_000  # 1 ms
MAX_INTERVAL_NS = 60_000_000_000  # 1 min
MAX_POWER_W = 100_000.0

SCHEMA = [
    plugin_pb2.ConfigKey(key="power_w", type="float", default_json="100.0", min=0.0, max=MAX_POWER_W,
                         doc="the simulated domain's constant power in watts; its counter is exactly this times the elapsed time"),
    plugin_pb2.ConfigKey(key="domain", type="string", default_json='"pyexample-node"',
                         doc="the simulated domain's id (a node-scoped node domain)"),
    plugin_pb2.ConfigKey(key="interval", type="duration", default_json='"20ms"', min=0.001, max=60.0, sampling_interval=True,
                         doc="sampling interval of a session whose start request names none"),
]


def mono_ns():
    """CLOCK_MONOTONIC in nanoseconds: the clock every lemctl process shares."""
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC)


def log(level, msg, **fields):
    """One hclog-style JSON line on stderr; lemctl forwards it under the plugin's name."""
    now = datetime.datetime.now(datetime.timezone.utc)
    rec = {"@level": level, "@message": msg, "@timestamp": now.strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")}
    rec.update(fields)
    sys.stderr.write(json.dumps(rec) + "\n")
    sys.stderr.flush()


# ---- configuration ------------------------------------------------------------------------

_DURATION_RE = re.compile(r"([0-9]*\.?[0-9]+)(ns|us|µs|μs|ms|s|m|h)")
_UNIT_NS = {"ns": 1, "us": 1_000, "µs": 1_000, "μs": 1_000, "ms": 1_000_000, "s": 1_000_000_000,
            "m": 60_000_000_000, "h": 3_600_000_000_000}


def parse_duration_ns(text):
    """A Go duration string ("20ms", "1.5s", "1m30s") in nanoseconds, or None."""
    if text in ("0",):
        return 0
    pos, total = 0, 0.0
    for m in _DURATION_RE.finditer(text):
        if m.start() != pos:
            return None
        total += float(m.group(1)) * _UNIT_NS[m.group(2)]
        pos = m.end()
    if pos != len(text) or pos == 0:
        return None
    return int(total)


def json_type(v):
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    if isinstance(v, dict):
        return "object"
    return "null"


def valid_text(k):
    if k.HasField("min") and k.HasField("max"):
        return "%s in [%g, %g]" % (k.type, k.min, k.max)
    return "a " + k.type


def validate(table):
    """Checks a configuration table against SCHEMA; returns (settings, [ConfigError])."""
    schema = {k.key: k for k in SCHEMA}
    cfg = {k.key: json.loads(k.default_json) for k in SCHEMA}
    errors = []
    for key in sorted(table):
        value = table[key]
        spec = schema.get(key)
        if spec is None:
            errors.append(plugin_pb2.ConfigError(key=key, message="unknown key",
                                                 valid="one of " + json.dumps(sorted(schema))))
            continue
        num = None
        if spec.type == "float":
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                errors.append(plugin_pb2.ConfigError(key=key, message="wrong type " + json_type(value), valid=valid_text(spec)))
                continue
            num = float(value)
        elif spec.type == "string":
            if not isinstance(value, str):
                errors.append(plugin_pb2.ConfigError(key=key, message="wrong type " + json_type(value), valid=valid_text(spec)))
                continue
            if value == "" or any(c in value for c in " \t\n"):
                errors.append(plugin_pb2.ConfigError(key=key, message="%r is empty or contains spaces" % value, valid="a non-empty id without spaces"))
                continue
        elif spec.type == "duration":
            ns = parse_duration_ns(value) if isinstance(value, str) else None
            if not isinstance(value, str):
                errors.append(plugin_pb2.ConfigError(key=key, message="wrong type " + json_type(value), valid=valid_text(spec)))
                continue
            if ns is None:
                errors.append(plugin_pb2.ConfigError(key=key, message='"%s" is not a duration (write e.g. "100ms" or "2s")' % value,
                                                     valid=valid_text(spec)))
                continue
            num = ns / 1e9
        if num is not None and ((spec.HasField("min") and num < spec.min) or (spec.HasField("max") and num > spec.max)):
            errors.append(plugin_pb2.ConfigError(key=key, message="%g is out of range" % num, valid=valid_text(spec)))
            continue
        cfg[key] = value
    return cfg, errors


# ---- the meter ----------------------------------------------------------------------------

class Settings:
    def __init__(self, cfg):
        self.power_uw = int(round(float(cfg["power_w"]) * 1e6))  # integer µW: the counter is exact
        self.domain_id = cfg["domain"]
        self.interval_ns = parse_duration_ns(cfg["interval"])

    def domain(self):
        return energy_pb2.Domain(
            id=self.domain_id, name="simulated constant-power node", kind="node", scope="node",
            method="counter", confidence="simulated", available=True,
            resolution_uj=1, update_period_ns=0, max_power_uw=self.power_uw, device_index=-1)


class Session:
    """One measurement: a sampling thread appends (mono_ns, energy_uj) pairs."""

    def __init__(self, sid, settings, interval_ns, label):
        self.id = sid
        self.settings = settings
        self.interval_ns = interval_ns
        self.label = label
        self.lock = threading.Lock()
        self.samples = []
        self.marks = []
        self.stop_event = threading.Event()
        self.cpu0 = time.process_time_ns()
        self.t0 = None
        self.sample()
        self.thread = threading.Thread(target=self.run, name="session-" + sid, daemon=True)
        self.thread.start()

    def sample(self):
        """Takes one sample now; returns its time. The counter is power x elapsed, exactly."""
        with self.lock:
            t = mono_ns()
            if self.t0 is None:
                self.t0 = t
            self.samples.append((t, self.settings.power_uw * (t - self.t0) // 1_000_000_000))
            return t

    def run(self):
        while not self.stop_event.wait(self.interval_ns / 1e9):
            self.sample()

    def stop(self):
        self.stop_event.set()
        self.thread.join()
        self.sample()
        return time.process_time_ns() - self.cpu0


class Meter:
    def __init__(self):
        self.lock = threading.Lock()
        self.settings = Settings(validate({})[0])
        self.sessions = {}

    # lem.plugin.v1
    def info(self):
        return plugin_pb2.InfoResponse(
            name=NAME, kinds=["energy"], version=VERSION, api_versions=[API_VERSION],
            description="Python example meter: one simulated node domain at a constant power_w (no Go sdk)",
            capabilities={"language": "python"}, config_schema=SCHEMA)

    def configure(self, raw):
        try:
            table = json.loads(raw or b"{}")
        except ValueError as e:
            raise RPCError(grpc.StatusCode.INVALID_ARGUMENT, "config_json is not JSON: %s" % e)
        if not isinstance(table, dict):
            raise RPCError(grpc.StatusCode.INVALID_ARGUMENT, "config_json is not a JSON object")
        cfg, errors = validate(table)
        if not errors:
            with self.lock:
                self.settings = Settings(cfg)
        return errors

    # lem.energy.v1
    def start(self, req):
        if req.interval_ns < 0:
            raise RPCError(grpc.StatusCode.INVALID_ARGUMENT, "interval %d ns is negative" % req.interval_ns)
        with self.lock:
            settings = self.settings
        dom = settings.domain()
        for d in req.domains:
            if d != dom.id:
                raise RPCError(grpc.StatusCode.INVALID_ARGUMENT, "unknown domain %r (valid: %r)" % (d, dom.id))
        interval = req.interval_ns or settings.interval_ns
        findings = []
        if interval < MIN_INTERVAL_NS:
            findings.append(energy_pb2.Finding(code="interval_raised", severity="info",
                                               message="interval %d ns raised to the meter's minimum %d ns" % (interval, MIN_INTERVAL_NS)))
            interval = MIN_INTERVAL_NS
        elif interval > MAX_INTERVAL_NS:
            findings.append(energy_pb2.Finding(code="interval_shortened", severity="info",
                                               message="interval %d ns shortened to the meter's maximum %d ns" % (interval, MAX_INTERVAL_NS)))
            interval = MAX_INTERVAL_NS
        sess = Session(uuid.uuid4().hex, settings, interval, req.label)
        sess.findings = findings
        with self.lock:
            self.sessions[sess.id] = sess
        return energy_pb2.StartResponse(session=sess.id, start_mono_ns=sess.t0, interval_ns=interval, domains=[dom])

    def session(self, sid, pop=False):
        with self.lock:
            sess = self.sessions.pop(sid, None) if pop else self.sessions.get(sid)
        if sess is None:
            raise RPCError(grpc.StatusCode.NOT_FOUND, "no open session %r" % sid)
        return sess

    def mark(self, req):
        sess = self.session(req.session)
        t = sess.sample()
        with sess.lock:
            sess.marks.append(energy_pb2.Mark(label=req.label, mono_ns=t))
        return energy_pb2.MarkResponse(mono_ns=t)

    def stop(self, req):
        """Yields the StopResponse stream: the summary, then the timeline in chunks."""
        sess = self.session(req.session, pop=True)
        cpu = sess.stop()
        dom = sess.settings.domain()
        samples = [energy_pb2.Sample(mono_ns=t, energy_uj=e) for t, e in sess.samples]
        updates = sum(1 for a, b in zip(sess.samples, sess.samples[1:]) if a[1] != b[1])
        summary = energy_pb2.StopSummary(
            session=sess.id, start_mono_ns=sess.samples[0][0], stop_mono_ns=sess.samples[-1][0],
            domains=[energy_pb2.DomainEnergy(domain=dom, energy_uj=sess.samples[-1][1], counter_updates=updates,
                                             samples=len(samples))],
            marks=sess.marks, findings=sess.findings, sampler_cpu_ns=cpu)
        yield energy_pb2.StopResponse(summary=summary)
        chunk, size = [], 0
        for s in samples:
            n = s.ByteSize() + 4
            if chunk and size + n > CHUNK_BYTES - 1024:
                yield energy_pb2.StopResponse(timeline=energy_pb2.TimelineChunk(domain=dom.id, samples=chunk))
                chunk, size = [], 0
            chunk.append(s)
            size += n
        if chunk:
            yield energy_pb2.StopResponse(timeline=energy_pb2.TimelineChunk(domain=dom.id, samples=chunk))


class RPCError(Exception):
    """An error with the gRPC status code the host maps back to an sdk sentinel (docs/protocol.md)."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message


def rpc(fn):
    """Wraps a handler so that an RPCError becomes its status and anything else UNKNOWN."""
    def handler(self, request, context):
        try:
            return fn(self, request, context)
        except RPCError as e:
            context.abort(e.code, e.message)
    return handler


# ---- gRPC services ------------------------------------------------------------------------

class PluginService(plugin_pb2_grpc.PluginServicer):
    def __init__(self, meter):
        self.meter = meter

    @rpc
    def Info(self, request, context):
        return self.meter.info()

    @rpc
    def Configure(self, request, context):
        return plugin_pb2.ConfigureResponse(errors=self.meter.configure(request.config_json))


class EnergyService(energy_pb2_grpc.EnergyServicer):
    def __init__(self, meter):
        self.meter = meter

    @rpc
    def Inventory(self, request, context):
        with self.meter.lock:
            return energy_pb2.InventoryResponse(domains=[self.meter.settings.domain()])

    @rpc
    def Environment(self, request, context):
        return energy_pb2.EnvironmentResponse(facts={"simulated": "true", "python": sys.version.split()[0]})

    @rpc
    def Start(self, request, context):
        return self.meter.start(request)

    @rpc
    def Mark(self, request, context):
        return self.meter.mark(request)

    def Stop(self, request, context):
        try:
            stream = self.meter.stop(request)
            first = next(stream)  # raises RPCError before anything is sent
        except RPCError as e:
            context.abort(e.code, e.message)
        yield first
        yield from stream


class HealthService(health_pb2_grpc.HealthServicer):
    def Check(self, request, context):
        if request.service not in ("", HEALTH_SERVICE):
            context.abort(grpc.StatusCode.NOT_FOUND, "unknown service %r" % request.service)
        return health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.SERVING)

    def Watch(self, request, context):
        yield self.Check(request, context)
        shutdown.wait()


class ControllerService(controller_pb2_grpc.GRPCControllerServicer):
    def Shutdown(self, request, context):
        log("info", "shutdown requested by the host")
        shutdown.set()
        return controller_pb2.Empty()


class StdioService(controller_pb2_grpc.GRPCStdioServicer):
    """The host subscribes once; this plugin logs straight to stderr and forwards nothing, so the
    stream stays open and empty until shutdown."""

    def StreamStdio(self, request, context):
        shutdown.wait()
        return
        yield  # a generator that sends nothing


shutdown = threading.Event()


# ---- handshake ----------------------------------------------------------------------------

def self_signed_cert():
    """An ECDSA P-256 certificate for "localhost" that signs itself (AutoMTLS), as (cert PEM,
    key PEM, cert DER)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "lemctl plugin")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder()
            .subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(seconds=30))
            .not_valid_after(now + datetime.timedelta(days=365))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=False, content_commitment=False,
                                         data_encipherment=False, key_agreement=True, key_cert_sign=True, crl_sign=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return cert.public_bytes(serialization.Encoding.PEM), key_pem, cert.public_bytes(serialization.Encoding.DER)


def watch_parent():
    """Exits when the process that started us dies (a pidfd of the parent; getppid polling where
    pidfd_open is missing)."""
    ppid = os.getppid()

    def gone():
        log("warn", "parent process died; exiting", parent_pid=ppid)
        os._exit(1)

    def wait():
        try:
            fd = os.pidfd_open(ppid)
            select.select([fd], [], [])
            if os.getppid() != ppid:
                gone()
        except (AttributeError, OSError):
            pass
        while True:
            time.sleep(0.5)
            if os.getppid() != ppid:
                gone()

    if ppid == 1:
        gone()
    threading.Thread(target=wait, name="parent-watch", daemon=True).start()


def main():
    if os.environ.get(MAGIC_COOKIE_KEY) != MAGIC_COOKIE_VALUE:
        sys.stderr.write("%s is a lemctl plugin (energy): lemctl starts it; it is not run by hand.\n"
                         "Try: lemctl plugins describe %s\n" % (sys.argv[0], NAME))
        return 1
    versions = [v for v in os.environ.get("PLUGIN_PROTOCOL_VERSIONS", "").split(",") if v]
    if versions and str(API_VERSION) not in versions:
        log("error", "lemctl speaks none of this plugin's protocol versions", host=versions, plugin=[API_VERSION])
    watch_parent()
    meter = Meter()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16), options=[
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES), ("grpc.max_send_message_length", MAX_MESSAGE_BYTES)])
    plugin_pb2_grpc.add_PluginServicer_to_server(PluginService(meter), server)
    energy_pb2_grpc.add_EnergyServicer_to_server(EnergyService(meter), server)
    health_pb2_grpc.add_HealthServicer_to_server(HealthService(), server)
    controller_pb2_grpc.add_GRPCControllerServicer_to_server(ControllerService(), server)
    controller_pb2_grpc.add_GRPCStdioServicer_to_server(StdioService(), server)

    sock_dir = tempfile.mkdtemp(prefix="lem-plugin-pyexample-", dir=os.environ.get("PLUGIN_UNIX_SOCKET_DIR") or None)
    sock = os.path.join(sock_dir, "plugin.sock")
    server_cert = ""
    client_cert = os.environ.get("PLUGIN_CLIENT_CERT", "")
    if client_cert:
        cert_pem, key_pem, cert_der = self_signed_cert()
        creds = grpc.ssl_server_credentials([(key_pem, cert_pem)], root_certificates=client_cert.encode(),
                                            require_client_auth=True)
        server.add_secure_port("unix:" + sock, creds)
        server_cert = base64.b64encode(cert_der).decode().rstrip("=")
    else:
        server.add_insecure_port("unix:" + sock)
    server.start()
    signal.signal(signal.SIGTERM, lambda *_: shutdown.set())
    signal.signal(signal.SIGINT, lambda *_: shutdown.set())
    sys.stdout.write("%d|%d|unix|%s|grpc|%s\n" % (CORE_PROTOCOL_VERSION, API_VERSION, sock, server_cert))
    sys.stdout.flush()
    log("debug", "plugin serving", network="unix", address=sock)
    shutdown.wait()  # interrupted by SIGTERM/SIGINT too (their handlers set it)
    server.stop(grace=1).wait()
    try:
        os.unlink(sock)
        os.rmdir(sock_dir)
    except OSError:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
