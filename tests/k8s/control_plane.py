"""A real etcd and kube-apiserver on 127.0.0.1, started the way controller-runtime's envtest
does: no kubelet, no controllers, so objects are stored and validated but nothing runs.

The apiserver generates its own serving certificate (--cert-dir) and trusts one bearer token, of
a user in system:masters, from a token file written here with a fresh random token.
"""

from __future__ import annotations

import secrets
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import requests

from devstack.ports import HOST, free_ports
from devstack.stack import ManagedProcess, StackError, stop_process, wait_for

READY_TIMEOUT_S = 60.0
# A namespaced Service needs a range to allocate from; nothing is ever routed to it.
SERVICE_CLUSTER_IP_RANGE = "10.0.0.0/24"


@dataclass
class ControlPlane:
    etcd_binary: Path
    apiserver_binary: Path
    workdir: Path
    token: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    etcd: ManagedProcess | None = None
    apiserver: subprocess.Popen[bytes] | None = None
    apiserver_port: int = 0

    @property
    def url(self) -> str:
        return f"https://{HOST}:{self.apiserver_port}"

    @property
    def ca_cert(self) -> Path:
        """The apiserver's self-signed serving certificate (with its CA), written at start."""
        return self.workdir / "certs" / "apiserver.crt"

    @property
    def apiserver_log(self) -> Path:
        return self.workdir / "kube-apiserver.log"

    def start(self) -> None:
        client_port, peer_port, self.apiserver_port = free_ports(3)
        self._start_etcd(client_port, peer_port)
        self._start_apiserver(client_port)

    def stop(self) -> None:
        """The apiserver first: stopped after etcd, it hangs retrying its storage."""
        try:
            if self.apiserver is not None:
                stop_process(self.apiserver)
        finally:
            if self.etcd is not None:
                self.etcd.stop()

    def session(self) -> requests.Session:
        """HTTP to the apiserver as the system:masters user, verifying its certificate."""
        session = requests.Session()
        # Else REQUESTS_CA_BUNDLE (and proxy variables) from the environment override `verify`.
        session.trust_env = False
        session.headers["Authorization"] = f"Bearer {self.token}"
        session.verify = str(self.ca_cert)
        return session

    def write_kubeconfig(self, path: Path) -> Path:
        """A kubeconfig for helm: this server, its certificate, the token."""
        path.write_text(
            "apiVersion: v1\nkind: Config\n"
            f"clusters:\n- name: local\n  cluster:\n    server: {self.url}\n"
            f"    certificate-authority: {self.ca_cert}\n"
            f"users:\n- name: admin\n  user:\n    token: {self.token}\n"
            "contexts:\n- name: local\n  context:\n    cluster: local\n    user: admin\n"
            "current-context: local\n"
        )
        path.chmod(0o600)
        return path

    def _start_etcd(self, client_port: int, peer_port: int) -> None:
        client = f"http://{HOST}:{client_port}"
        peer = f"http://{HOST}:{peer_port}"
        self.etcd = ManagedProcess(
            name="etcd",
            argv=[
                str(self.etcd_binary),
                f"--data-dir={self.workdir / 'etcd'}",
                f"--listen-client-urls={client}",
                f"--advertise-client-urls={client}",
                f"--listen-peer-urls={peer}",
                f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster=default={peer}",
                # Throwaway data: envtest skips fsync too.
                "--unsafe-no-fsync",
                "--log-level=warn",
            ],
            log_path=self.workdir / "etcd.log",
            ready_url=f"{client}/health",
        )
        self.etcd.start(READY_TIMEOUT_S)

    def _start_apiserver(self, etcd_client_port: int) -> None:
        signing_key = self.workdir / "service-account.key"
        subprocess.run(
            ["openssl", "genrsa", "-out", str(signing_key), "2048"],
            check=True,
            capture_output=True,
            timeout=READY_TIMEOUT_S,
        )
        tokens = self.workdir / "tokens.csv"
        tokens.write_text(f"{self.token},admin,admin,system:masters\n")
        tokens.chmod(0o600)
        argv = [
            str(self.apiserver_binary),
            f"--etcd-servers=http://{HOST}:{etcd_client_port}",
            f"--bind-address={HOST}",
            f"--secure-port={self.apiserver_port}",
            f"--cert-dir={self.workdir / 'certs'}",
            f"--advertise-address={HOST}",
            # The reconciler of the `kubernetes` Service's endpoints refuses a loopback address;
            # nothing here reaches the apiserver through that Service.
            "--endpoint-reconciler-type=none",
            f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
            f"--service-account-issuer={self.url}",
            f"--service-account-key-file={signing_key}",
            f"--service-account-signing-key-file={signing_key}",
            f"--token-auth-file={tokens}",
            "--authorization-mode=RBAC",
        ]
        with self.apiserver_log.open("ab") as log:
            self.apiserver = subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        try:
            wait_for(self._ready, READY_TIMEOUT_S, what=f"kube-apiserver at {self.url}/readyz")
        except StackError as error:
            raise StackError(f"{error}\n--- kube-apiserver log tail:\n{self.log_tail()}") from None

    def _ready(self) -> bool:
        assert self.apiserver is not None
        if self.apiserver.poll() is not None:
            raise StackError(
                f"kube-apiserver exited with {self.apiserver.returncode}:\n{self.log_tail()}"
            )
        # Connection errors (not listening yet) are retried by wait_for.
        if not self.ca_cert.exists():
            return False
        return self.session().get(f"{self.url}/readyz", timeout=2).status_code == 200

    def log_tail(self, lines: int = 40) -> str:
        text = self.apiserver_log.read_text(errors="replace") if self.apiserver_log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])
