"""Start and stop a real local control plane: etcd + kube-apiserver +
kube-controller-manager on loopback.

    python tests/controlplane/cluster.py up   [--state DIR]   # prints the kubeconfig path last
    python tests/controlplane/cluster.py down [--state DIR]

The binaries come from ``bin/`` (see ``build.sh``). ``up`` is idempotent: when
the control plane in ``DIR`` is already serving it only prints the kubeconfig.
Certificates (CA, serving, an admin client certificate in ``system:masters``,
service-account keys) are generated with ``cryptography``.

kube-controller-manager runs the controllers that make the API behave as in a
real cluster without nodes: namespace deletion (``namespace-controller``),
ownerReference garbage collection, service accounts and their tokens, and the
``kube-root-ca.crt`` ConfigMap. Nothing that needs a kubelet runs (no pods
start). ``stop_component`` / ``start_component`` stop one process and start it
again with the same arguments and data, for fault tests.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import ipaddress
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

REPO = Path(__file__).resolve().parents[2]
BIN = REPO / "bin"
DEFAULT_STATE = Path(
    os.environ.get("ALERT_CONTACTS_CLUSTER_STATE", Path.home() / ".cache/alert-contacts/cluster")
)
READY_TIMEOUT = 120.0
COMPONENTS = ("etcd", "apiserver", "controller-manager")  # in start order
CONTROLLERS = (
    "namespace-controller",
    "garbage-collector-controller",
    "serviceaccount-controller",
    "serviceaccount-token-controller",
    "root-ca-certificate-publisher-controller",
)


def free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def _cert(
    subject: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    ca: bool = False,
    sans: list[x509.GeneralName] | None = None,
    usage: list[x509.ObjectIdentifier] | None = None,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    if usage:
        builder = builder.add_extension(x509.ExtendedKeyUsage(usage), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def make_pki(pki: Path) -> None:
    pki.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "alert-contacts-test-ca")])
    ca = _cert(ca_name, ca_key, ca_name, ca_key, ca=True)
    _write_key(pki / "ca.key", ca_key)
    (pki / "ca.crt").write_bytes(_pem(ca))

    serving_key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = [
        x509.DNSName("localhost"),
        x509.DNSName("kubernetes"),
        x509.DNSName("kubernetes.default"),
        x509.DNSName("kubernetes.default.svc"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("10.0.0.1")),
    ]
    serving = _cert(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]),
        serving_key, ca_name, ca_key,
        sans=sans, usage=[ExtendedKeyUsageOID.SERVER_AUTH],
    )
    _write_key(pki / "apiserver.key", serving_key)
    (pki / "apiserver.crt").write_bytes(_pem(serving))

    admin_key = ec.generate_private_key(ec.SECP256R1())
    admin = _cert(
        x509.Name([
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:masters"),
            x509.NameAttribute(NameOID.COMMON_NAME, "admin"),
        ]),
        admin_key, ca_name, ca_key, usage=[ExtendedKeyUsageOID.CLIENT_AUTH],
    )
    _write_key(pki / "admin.key", admin_key)
    (pki / "admin.crt").write_bytes(_pem(admin))

    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    _write_key(pki / "sa.key", sa_key)
    (pki / "sa.pub").write_bytes(
        sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


def write_kubeconfig(state: Path, port: int) -> Path:
    pki = state / "pki"
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{
            "name": "alert-contacts-local",
            "cluster": {
                "server": f"https://127.0.0.1:{port}",
                "certificate-authority": str(pki / "ca.crt"),
            },
        }],
        "users": [{
            "name": "admin",
            "user": {
                "client-certificate": str(pki / "admin.crt"),
                "client-key": str(pki / "admin.key"),
            },
        }],
        "contexts": [{
            "name": "alert-contacts-local",
            "context": {"cluster": "alert-contacts-local", "user": "admin"},
        }],
        "current-context": "alert-contacts-local",
    }
    path = state / "kubeconfig"
    path.write_text(json.dumps(config, indent=2) + "\n")  # JSON is valid YAML
    path.chmod(0o600)
    return path


def _ssl_context(state: Path) -> ssl.SSLContext:
    pki = state / "pki"
    ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    ctx.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
    return ctx


def is_ready(state: Path) -> bool:
    ports = state / "ports.json"
    if not ports.exists():
        return False
    port = json.loads(ports.read_text())["apiserver"]
    try:
        with urllib.request.urlopen(
            f"https://127.0.0.1:{port}/readyz", context=_ssl_context(state), timeout=2
        ) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def _log(state: Path, name: str) -> Path:
    return state / f"{name}.log"


def _controllers_running(state: Path) -> bool:
    """The service-account controller has made the default namespace's account:
    kube-controller-manager is up and its controllers are working."""
    port = json.loads((state / "ports.json").read_text())["apiserver"]
    try:
        with urllib.request.urlopen(
            f"https://127.0.0.1:{port}/api/v1/namespaces/default/serviceaccounts/default",
            context=_ssl_context(state), timeout=2,
        ) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def _spawn(args: list[str], log: Path) -> int:
    with log.open("ab") as out:
        proc = subprocess.Popen(
            args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,  # outlives `make cluster-up`; stopped by `down`
        )
    return proc.pid


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def up(state: Path) -> Path:
    if is_ready(state) and _pids_alive(state):
        return state / "kubeconfig"
    down(state)  # a half-started or dead control plane: start clean
    for tool in ("etcd", "kube-apiserver", "kube-controller-manager"):
        if not (BIN / tool).exists():
            sys.exit(f"{BIN / tool} is missing: run `make tools` first")
    state.mkdir(parents=True, exist_ok=True)
    make_pki(state / "pki")
    ports = {"etcd": free_port(), "etcd_peer": free_port(), "apiserver": free_port()}
    (state / "ports.json").write_text(json.dumps(ports))
    pki = state / "pki"
    etcd_url = f"http://127.0.0.1:{ports['etcd']}"
    peer_url = f"http://127.0.0.1:{ports['etcd_peer']}"
    kubeconfig = write_kubeconfig(state, ports["apiserver"])
    commands = {
        "etcd": [
            str(BIN / "etcd"), "--name=default", f"--data-dir={state / 'etcd'}",
            f"--listen-client-urls={etcd_url}", f"--advertise-client-urls={etcd_url}",
            f"--listen-peer-urls={peer_url}", f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster=default={peer_url}",
            "--unsafe-no-fsync",  # test data: durability is not worth the latency here
            "--quota-backend-bytes=4294967296",
            "--log-level=warn",
        ],
        "apiserver": [
            str(BIN / "kube-apiserver"),
            f"--etcd-servers={etcd_url}",
            "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
            f"--secure-port={ports['apiserver']}",
            f"--tls-cert-file={pki / 'apiserver.crt'}",
            f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--client-ca-file={pki / 'ca.crt'}",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            "--service-cluster-ip-range=10.0.0.0/24",
            "--authorization-mode=RBAC",
            "--enable-priority-and-fairness=false",
            f"--cert-dir={pki}",
            "--v=1",
        ],
        "controller-manager": [
            str(BIN / "kube-controller-manager"),
            f"--kubeconfig={kubeconfig}",
            f"--controllers={','.join(CONTROLLERS)}",
            f"--service-account-private-key-file={pki / 'sa.key'}",
            f"--root-ca-file={pki / 'ca.crt'}",
            "--leader-elect=false",  # one instance
            "--secure-port=0",  # no health endpoint: nothing scrapes it here
            # Tests delete a namespace each: work on several at once.
            "--concurrent-namespace-syncs=5",
            "--v=1",
        ],
    }
    (state / "commands.json").write_text(json.dumps(commands))
    pids = {name: _spawn(commands[name], _log(state, name)) for name in COMPONENTS}
    (state / "pids.json").write_text(json.dumps(pids))
    deadline = time.monotonic() + READY_TIMEOUT
    while not (is_ready(state) and _controllers_running(state)):
        dead = [name for name, pid in pids.items() if not _alive(pid)]
        if dead or time.monotonic() > deadline:
            why = f"{', '.join(dead)} exited" if dead else f"not ready in {READY_TIMEOUT:.0f}s"
            logs = "\n".join(
                f"--- {log.name} (tail) ---\n" + "\n".join(log.read_text().splitlines()[-30:])
                for log in (_log(state, name) for name in COMPONENTS) if log.exists()
            )
            down(state)
            sys.exit(f"control plane failed to start: {why}\n{logs}")
        time.sleep(0.25)
    return write_kubeconfig(state, ports["apiserver"])


def _pids_alive(state: Path) -> bool:
    pids_file = state / "pids.json"
    if not pids_file.exists():
        return False
    pids: dict[str, int] = json.loads(pids_file.read_text())
    return all(name in pids and _alive(pids[name]) for name in COMPONENTS)


def _wait_gone(pid: int, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while _alive(pid) and time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # reap it when it is our child
        time.sleep(0.05)


def _terminate(pid: int, graceful: bool = True) -> None:
    if graceful and _alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
        _wait_gone(pid, 15)
    if _alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        _wait_gone(pid, 10)


def stop_component(state: Path, name: str, graceful: bool = False) -> None:
    """Stop one of etcd, apiserver, controller-manager: killed at once, as by a
    crash or a lost node (``graceful``: SIGTERM first, SIGKILL after 15 s)."""
    pids: dict[str, int] = json.loads((state / "pids.json").read_text())
    _terminate(pids[name], graceful)


def start_component(state: Path, name: str) -> None:
    """Start a stopped component again with its arguments and data; returns at once."""
    commands: dict[str, list[str]] = json.loads((state / "commands.json").read_text())
    pids: dict[str, int] = json.loads((state / "pids.json").read_text())
    if _alive(pids[name]):
        raise RuntimeError(f"{name} is still running (pid {pids[name]})")
    pids[name] = _spawn(commands[name], _log(state, name))
    (state / "pids.json").write_text(json.dumps(pids))


def down(state: Path) -> None:
    pids_file = state / "pids.json"
    if pids_file.exists():
        pids: dict[str, int] = json.loads(pids_file.read_text())
        # Clients of the API server first, so it does not log a storm of etcd errors.
        for name in reversed(COMPONENTS):
            pid = pids.get(name)
            if pid is not None:
                _terminate(pid)
    shutil.rmtree(state, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["up", "down"])
    parser.add_argument("--state", type=Path, default=DEFAULT_STATE,
                        help="directory for certificates, data and logs (default: %(default)s)")
    args = parser.parse_args()
    if args.command == "up":
        print(up(args.state))
    else:
        down(args.state)


if __name__ == "__main__":
    main()
