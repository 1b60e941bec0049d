"""Security: loopback-only listeners, TLS schedulers, cluster classes by name, nbexec-less workers.

- Everything nbexec starts (LocalCluster with worker processes or threads, the process pool)
  listens on 127.0.0.1 only: checked on the listening sockets of this process and its children.
- A ``dask scheduler`` with TLS certificates generated here (self-signed CA) is reachable through
  ``tls_ca_file``/``tls_cert``/``tls_key`` (``--tls-*`` on the magic line) and through
  distributed's TLS settings in dask config.
- A cluster class named by a string must be a ``distributed.deploy.Cluster`` subclass; anything
  else is refused before anything runs, and the module a bare name names is not even imported.
- Workers that cannot import nbexec run everything: tasks, map, dependencies, retries, failures,
  dask collections.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import cloudpickle
import dask
import psutil
import pytest
from fixtures_dask import DASK, DaskCLICluster
from IPython.core.error import UsageError
from reliability_helpers import listening, wait_for

import nbexec
from nbexec import session

pytestmark = pytest.mark.reliability
cloudpickle.register_pickle_by_value(sys.modules[__name__])

LOOPBACK = {"127.0.0.1", "::1"}


def square(x):
    return x * x


# --- listening sockets ------------------------------------------------------------------------


def _all_listening() -> set[tuple[int, str, int]]:
    me = psutil.Process()
    pids = [me.pid] + [p.pid for p in me.children(recursive=True)]
    return set(listening(pids))


@pytest.mark.parametrize(
    ("mode", "options"),
    [
        ("dask", {"workers": 1, "processes": True, "threads_per_worker": 1}),
        ("dask", {"workers": 1, "processes": False}),
        ("processes", {"workers": 2}),
    ],
    ids=["dask-processes", "dask-threads", "processes"],
)
def test_everything_started_listens_on_loopback_only(mode, options, monkeypatch):
    monkeypatch.delenv(session.ENV_VAR, raising=False)
    before = _all_listening()
    nbexec.use(mode, **options)
    try:
        with nbexec.run() as run:
            futures = nbexec.map(square, range(4))
        assert [f.result() for f in futures] == [0, 1, 4, 9], run.summary()
        new = _all_listening() - before
        if mode == "dask" and options["processes"]:
            # scheduler + dashboard in the kernel; nanny + worker in their processes
            assert len(new) >= 3, new
        outside = [s for s in new if s[1] not in LOOPBACK]
        assert not outside, f"{mode} {options} listens beyond loopback: {outside}"
        print(f"\n{mode} {options}: {len(new)} new listening sockets, all on loopback")
    finally:
        session.stop()


# --- TLS --------------------------------------------------------------------------------------


def _make_certs(root: Path) -> dict[str, str]:
    """A self-signed CA and one certificate (server and client use) for 127.0.0.1/localhost."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "nbexec test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),  # fmt: skip
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = {"ca": root / "ca.pem", "cert": root / "cert.pem", "key": root / "key.pem"}
    paths["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths["cert"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths["key"].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    os.chmod(paths["key"], 0o600)
    return {k: str(v) for k, v in paths.items()}


class TLSCluster(DaskCLICluster):
    """The CLI cluster of fixtures_dask, with TLS everywhere."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.certs = _make_certs(root)
        self.tls_args = ["--tls-ca-file", self.certs["ca"], "--tls-cert", self.certs["cert"],
                         "--tls-key", self.certs["key"]]  # fmt: skip

    def start_scheduler(self) -> None:
        self.scheduler = self._popen(
            [DASK, "scheduler", "--protocol", "tls", "--host", "127.0.0.1", "--port", "0",
             "--dashboard-address", "127.0.0.1:0", "--scheduler-file", self.scheduler_file,
             *self.tls_args],
            "scheduler",
        )  # fmt: skip
        self.wait_for_address()

    @property
    def security(self):
        from distributed import Security

        return Security(tls_ca_file=self.certs["ca"], tls_client_cert=self.certs["cert"],
                        tls_client_key=self.certs["key"], require_encryption=True)  # fmt: skip

    def client(self):
        import distributed

        return distributed.Client(
            self.address, timeout=10, set_as_default=False, security=self.security
        )


@pytest.fixture(scope="module")
def tls_cluster(tmp_path_factory):
    cluster = TLSCluster(tmp_path_factory.mktemp("dask-tls"))
    try:
        cluster.start_scheduler()
        assert cluster.address.startswith("tls://127.0.0.1:"), cluster.address
        cluster.start_worker(*cluster.tls_args)
        yield cluster
    finally:
        cluster.close()


def _shell():
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    if "executor" not in shell.magics_manager.magics["line"]:
        shell.run_line_magic("load_ext", "nbexec")
    return shell


def _check_runs(executor) -> None:
    with nbexec.run(executor) as run:
        squares = nbexec.map(square, range(5))
        total = nbexec.submit(sum, squares)
    assert total.result() == 30, run.summary()


def test_tls_scheduler_with_tls_options(tls_cluster):
    certs = tls_cluster.certs
    executor = nbexec.executor_for(
        "dask", address=tls_cluster.address, tls_ca_file=certs["ca"], tls_cert=certs["cert"],
        tls_key=certs["key"], timeout=10,
    )  # fmt: skip
    with executor.start():
        assert executor.client.scheduler.address.startswith("tls://")
        _check_runs(executor)


def test_tls_scheduler_with_dask_config(tls_cluster):
    certs = tls_cluster.certs
    with dask.config.set(
        {
            "distributed.comm.tls.ca-file": certs["ca"],
            "distributed.comm.tls.client.cert": certs["cert"],
            "distributed.comm.tls.client.key": certs["key"],
        }
    ):
        executor = nbexec.executor_for("dask", address=tls_cluster.address, timeout=10)
        with executor.start():
            _check_runs(executor)


def test_tls_scheduler_with_the_magic_line(tls_cluster, monkeypatch):
    monkeypatch.delenv(session.ENV_VAR, raising=False)
    certs = tls_cluster.certs
    shell = _shell()
    try:
        shell.run_line_magic(
            "executor",
            f"dask --address {tls_cluster.address} --tls-ca-file {certs['ca']} "
            f"--tls-cert {certs['cert']} --tls-key {certs['key']} --timeout 10",
        )
        assert session.current().client is not None
        _check_runs(session.current())
    finally:
        session.stop()


def test_tls_scheduler_refuses_a_client_without_certificates(tls_cluster):
    executor = nbexec.executor_for("dask", address=tls_cluster.address, timeout=2)
    t0 = time.monotonic()
    with pytest.raises(Exception) as info:  # noqa: B017 - distributed's TLS errors vary by version
        with executor.start():
            pass
    assert time.monotonic() - t0 < 4
    assert not executor.started
    assert tls_cluster.address in str(info.value) and "TLS" in str(info.value), info.value
    print(f"\nno certificates: {type(info.value).__name__}: {info.value}")


# --- cluster classes named by string ----------------------------------------------------------

NOT_CLUSTERS = ["antigravity", "this", "os.system", "subprocess.Popen", "builtins.exec",
                "builtins.eval", "distributed.Client", "nbexec.executors.dask.DaskExecutor",
                "__import__('os').system('true')", "os.system('true')", "distributed.LocalCluster()",
                "distributed..LocalCluster", ""]  # fmt: skip


@pytest.mark.parametrize("name", NOT_CLUSTERS)
def test_cluster_class_string_must_name_a_cluster(name, monkeypatch):
    monkeypatch.delenv(session.ENV_VAR, raising=False)
    side_effects = [m for m in ("antigravity", "this") if m not in sys.modules]
    children = len(psutil.Process().children(recursive=True))
    with pytest.raises(ValueError, match="Cluster"):
        nbexec.executor_for("dask", cluster_class=name)
    with pytest.raises(ValueError, match="Cluster"):
        nbexec.use("dask", cluster_class=name)
    shell = _shell()
    if name:
        with pytest.raises(UsageError, match="Cluster"):
            shell.run_line_magic("executor", f"dask --cluster-class {json.dumps(name)}")
    assert session.current() is None
    assert [m for m in side_effects if m in sys.modules] == [], "a refused name was imported"
    assert len(psutil.Process().children(recursive=True)) == children


def test_cluster_class_string_accepts_cluster_subclasses():
    from distributed import LocalCluster

    executor = nbexec.executor_for("dask", cluster_class="distributed.LocalCluster", workers=1)
    assert executor.cluster_class is LocalCluster


def test_command_line_refuses_a_non_cluster_class(tmp_path):
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_code_cell("import antigravity"))
    nbformat.write(nb, tmp_path / "nb.ipynb")
    out = subprocess.run(
        [sys.executable, "-m", "nbexec", "run", str(tmp_path / "nb.ipynb"), "--executor",
         "dask --cluster-class antigravity"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 2 and "Cluster" in out.stderr and out.stderr.count("\n") == 1


# --- workers without nbexec -------------------------------------------------------------------


def flaky(path, fails):
    with open(path, "a") as f:
        f.write("x")
    with open(path) as f:
        attempts = len(f.read())
    if attempts <= fails:
        raise RuntimeError(f"attempt {attempts} fails")
    return attempts


def boom(x):
    raise ValueError(f"bad {x}")


def test_workers_without_nbexec_run_everything(dask_cli_cluster, tmp_path):
    from nbexec.executors.dask import remote

    with dask_cli_cluster.client() as c:
        assert not any(c.run(remote.worker_has_nbexec).values())
    inc = nbexec.task(lambda x: x + 1, name="inc")
    add = nbexec.task(name="add")(lambda x, y: x + y)
    retried = nbexec.task(flaky, retries=2, retry_delay=0.1)
    executor = nbexec.executor_for("dask", address=dask_cli_cluster.address)
    with executor.start():
        with nbexec.run(executor) as run:
            a = inc(1)
            b = add(a, 10)
            many = nbexec.map(square, range(10))
            nested = nbexec.submit(lambda d: d["x"] + sum(d["ys"]), {"x": a, "ys": many[:3]})
            again = retried(str(tmp_path / "flaky"), 2)
            import dask.bag as db

            # (builtins: distributed pickles a graph's functions by reference unless they
            # live in __main__, as a notebook's do; this test module is not importable there)
            bag_total = db.from_sequence(range(10), npartitions=3).map(pow, 2).sum().compute()
        assert (a.result(), b.result(), nested.result(), again.result()) == (2, 12, 7, 3)
        assert [f.result() for f in many] == [i * i for i in range(10)]
        assert bag_total == 285
        # attempts are counted from events sent through the scheduler: they may land late
        wait_for(lambda: run.tracker.record(again._id).attempts == 3, 5, "3 attempts counted")
        assert all(r.where and r.where.startswith("tcp://127.0.0.1") for r in
                   (run.tracker.record(f._id) for f in [a, b, *many]))  # fmt: skip
        with pytest.raises(nbexec.TaskFailed) as info:
            with nbexec.run(executor) as failing:
                bad = nbexec.submit(boom, 1)
                after = inc(bad)
                fine = inc(5)
        assert info.value.task_name == "boom" and isinstance(info.value.__cause__, ValueError)
        assert after.state == "cancelled" and fine.result() == 6
        assert failing.summary() == {"boom": {"failed": 1}, "inc": {"cancelled": 1, "success": 1}}
