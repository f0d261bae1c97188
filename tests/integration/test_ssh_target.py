"""The SSH target against a real OpenSSH server on loopback, with throwaway keys: end to end,
refused host keys (unknown, changed) and a connection dropped mid-run."""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "harness.cli"]
SSHD = "/usr/sbin/sshd"

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(os.geteuid() != 0, reason="sshd and the lab need root"),
              pytest.mark.skipif(not Path(SSHD).exists(), reason="openssh-server is not installed (scripts/setup --tests)"),
              pytest.mark.skipif(shutil.which("run-experiment") is None, reason="run-experiment is not installed (scripts/setup)")]


def _keygen(path: Path) -> str:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return path.with_suffix(".pub").read_text().strip()


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    """sshd on 127.0.0.1:<free port>; a HOME whose .ssh holds the client key and the server's key."""
    base = tmp_path_factory.mktemp("sshd")
    host_pub = _keygen(base / "host_key")
    home = base / "home"
    (home / ".ssh").mkdir(parents=True)
    client_pub = _keygen(home / ".ssh" / "id_ed25519")
    (base / "authorized_keys").write_text(client_pub + "\n")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    (base / "sshd_config").write_text(f"""Port {port}
ListenAddress 127.0.0.1
HostKey {base / 'host_key'}
AuthorizedKeysFile {base / 'authorized_keys'}
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PidFile {base / 'sshd.pid'}
Subsystem sftp internal-sftp
""" + (f"SetEnv PYTHONPATH={os.environ['PYTHONPATH']}\n" if os.environ.get("PYTHONPATH") else ""))  # the same harness remotely
    Path("/run/sshd").mkdir(exist_ok=True)
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(base / "sshd_config")], stderr=subprocess.PIPE, text=True)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    known = f"[127.0.0.1]:{port} {' '.join(host_pub.split()[:2])}\n"
    try:
        yield {"port": port, "home": home, "known": known, "target": f"ssh://root@127.0.0.1:{port}", "pid": proc.pid}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run_cli(sshd, known: str, args: list[str], results: Path, **kw) -> subprocess.CompletedProcess:
    (sshd["home"] / ".ssh" / "known_hosts").write_text(known)
    env = dict(os.environ, HOME=str(sshd["home"]))
    return subprocess.run(CLI + ["--target", sshd["target"], "--results-dir", str(results), *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=1800, **kw)


def test_unknown_host_key_is_refused_with_the_command_to_trust_it(sshd, tmp_path):
    proc = run_cli(sshd, "", ["handshake.yaml"], tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "not in ~/.ssh/known_hosts" in proc.stderr and f"ssh-keyscan -p {sshd['port']} 127.0.0.1" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_changed_host_key_is_refused(sshd, tmp_path):
    other = _keygen(tmp_path / "other")
    proc = run_cli(sshd, f"[127.0.0.1]:{sshd['port']} {' '.join(other.split()[:2])}\n", ["handshake.yaml"], tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "has CHANGED" in proc.stderr and "ssh-keygen -R" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_handshake_runs_remotely_and_the_results_come_back(sshd, tmp_path):
    proc = run_cli(sshd, sshd["known"], ["handshake.yaml"], tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "connected to ssh://root@127.0.0.1" in proc.stdout and "handshake on kernel" in proc.stdout
    (result,) = tmp_path.glob("handshake/*/result.json")
    assert '"passed": true' in result.read_text()
    assert list(result.parent.glob("pcap/*.pcap")) and list(result.parent.glob("samples/*.jsonl"))
    assert not list(Path("/tmp").glob(f"tcp-testbed*/**/{result.parent.name}"))      # the remote folder is removed


def test_a_fast_remote_failure_keeps_its_exit_code(sshd, tmp_path):
    """The remote exits 2 at once (its --kernel does not exist): every time, exit 2 and its message,
    never "connection lost" (the end of the output and the exit status used to race: 10 of 16 lost)."""
    codes = []
    for _ in range(16):
        proc = run_cli(sshd, sshd["known"], ["--kernel", "/nonexistent", "handshake.yaml"], tmp_path)
        codes.append(proc.returncode)
        assert "lost mid-run" not in proc.stderr and "Traceback" not in proc.stderr, proc.stdout + proc.stderr
        assert "kernel image '/nonexistent' does not exist" in proc.stdout
    assert codes == [2] * 16


def test_a_precreated_remote_folder_is_not_used(sshd, tmp_path, monkeypatch):
    """Every name the old /tmp/tcp-testbed-<pid>-<time> scheme could pick in the next 5 minutes exists
    already (owned by someone else, say): the run goes on in a folder of its own (mktemp -d) and that
    folder is gone when run_over_ssh returns (the clean-up is waited for)."""
    from harness.targets.ssh import parse_ssh_target, run_over_ssh
    (sshd["home"] / ".ssh" / "known_hosts").write_text(sshd["known"])
    monkeypatch.setenv("HOME", str(sshd["home"]))
    now = int(time.time())
    traps = [Path(f"/tmp/tcp-testbed-{os.getpid()}-{t}") for t in range(now - 5, now + 300)]
    before = set(Path("/tmp").glob("tcp-testbed*"))
    try:
        for trap in traps:
            trap.mkdir(mode=0o700, exist_ok=True)
        experiment = REPO / "experiments" / "handshake.yaml"
        code = run_over_ssh(parse_ssh_target(sshd["target"]), [(experiment, REPO / "topologies" / "two_hosts.yaml")],
                            ["--kernel=/nonexistent"], tmp_path)
        left = set(Path("/tmp").glob("tcp-testbed*")) - before - set(traps)
    finally:
        for trap in traps:
            shutil.rmtree(trap, ignore_errors=True)
    assert code == 2
    assert not left, f"remote folder left behind: {left}"


def test_a_results_folder_that_cannot_be_made_is_a_run_failure_not_a_traceback(sshd, tmp_path, monkeypatch):
    from harness.errors import RunFailed
    from harness.targets.ssh import parse_ssh_target, run_over_ssh
    (sshd["home"] / ".ssh" / "known_hosts").write_text(sshd["known"])
    monkeypatch.setenv("HOME", str(sshd["home"]))
    (tmp_path / "a-file").write_text("")
    with pytest.raises(RunFailed, match="copying files to or from .* failed"):
        run_over_ssh(parse_ssh_target(sshd["target"]), [(REPO / "experiments" / "handshake.yaml", REPO / "topologies" / "two_hosts.yaml")],
                     ["--kernel=/nonexistent"], tmp_path / "a-file" / "results")


def test_an_experiment_named_like_an_option_runs(sshd, tmp_path):
    odd = tmp_path / "-x.yaml"
    odd.write_text((REPO / "tests" / "fixtures" / "handshake_plain.yaml").read_text())
    shutil.copy(REPO / "topologies" / "two_hosts_plain.yaml", tmp_path)
    proc = run_cli(sshd, sshd["known"], [str(odd)], tmp_path / "results")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert list((tmp_path / "results" / "handshake_plain").glob("*/result.json"))


def test_a_connection_dropped_mid_run_stops_and_cleans_the_remote_run(sshd, tmp_path):
    proc = _start_long_run(sshd, tmp_path)
    try:
        remote = _descendants(sshd["pid"])         # our sshd's sessions and the remote run under them
        folders = _remote_folders(remote)
        ledgers = [path for pid in remote for path in Path("/run/tcp-testbed").glob(f"{pid}*.json")]
        interfaces = {name for path in ledgers for name in json.loads(path.read_text()).get("interfaces", [])}
        sessions = [pid for pid in remote if _command(pid).startswith("sshd: root@")]
        assert sessions and ledgers and interfaces
        for pid in sessions:
            os.kill(pid, signal.SIGKILL)
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 3, out + err
    assert "connection to ssh://root@127.0.0.1" in err and "lost mid-run" in err and "Traceback" not in err
    for _ in range(300):       # the remote run got SIGHUP and tears its lab down
        links = {line.split(":")[1].strip().split("@")[0]
                 for line in subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout.splitlines()}
        alive = [pid for pid in remote if Path(f"/proc/{pid}").exists()]
        if not (links & interfaces) and not alive and not any(path.exists() for path in ledgers):
            break
        time.sleep(1)
    assert not links & interfaces and not alive
    assert not [path for path in ledgers if path.exists()]
    assert folders and "could not remove" in out     # the connection is gone: the remote folder stays, and we say so
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)


def _start_long_run(sshd, tmp_path: Path) -> subprocess.Popen:
    """A 30 s plain run on the remote, returned once its timeline runs (the caller kills its group)."""
    long_run = tmp_path / "long_plain.yaml"
    long_run.write_text((REPO / "tests" / "fixtures" / "handshake_plain.yaml").read_text()
                        .replace("duration: 3s", "duration: 30s"))
    shutil.copy(REPO / "topologies" / "two_hosts_plain.yaml", tmp_path)
    (sshd["home"] / ".ssh" / "known_hosts").write_text(sshd["known"])
    proc = subprocess.Popen(CLI + ["--target", sshd["target"], "--results-dir", str(tmp_path / "results"), str(long_run)],
                            cwd=REPO, env=dict(os.environ, HOME=str(sshd["home"])), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        for line in proc.stdout:
            if "running the timeline" in line:
                break
    except BaseException:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise
    return proc


def _remote_folders(pids: list[int]) -> set[Path]:
    """The remote run's folders (the working directory of its processes)."""
    found = set()
    for pid in pids:
        try:
            cwd = Path(os.readlink(f"/proc/{pid}/cwd"))
        except OSError:
            continue
        if cwd.name.startswith("tcp-testbed."):
            found.add(cwd)
    return found


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _command(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def test_a_remote_run_killed_by_a_signal_is_not_called_a_lost_connection(sshd, tmp_path):
    """SIGKILL the remote shell (sshd then sends exit-signal, no exit status) while the connection
    stays up: the run gives no verdict (exit 3) and says the remote run ended, not the connection."""
    proc = _start_long_run(sshd, tmp_path)
    try:
        remote = _descendants(sshd["pid"])
        folders = _remote_folders(remote)
        shells = [pid for pid in remote if _command(pid).startswith(("bash -c cd /tmp/tcp-testbed", "sh -c cd /tmp/tcp-testbed"))]
        assert len(shells) == 1, [_command(pid) for pid in remote]
        os.kill(shells[0], signal.SIGKILL)
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 3, out + err
    assert "ended without an exit status" in err and "lost" not in err and "Traceback" not in err
    for _ in range(300):       # the run lost its terminal (SIGHUP) and tears its lab down
        alive = [pid for pid in remote if Path(f"/proc/{pid}").exists()]
        if not alive:
            break
        time.sleep(1)
    assert not alive
    assert folders and not [folder for folder in folders if folder.exists()]    # removed over the live connection
