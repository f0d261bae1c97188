"""SSH target: run experiments on another Linux machine (or the Vagrant VM) that has the test bed.

The experiment files and their topologies go up over SFTP into a fresh remote folder; the remote
`run-experiment` runs there under a pseudo-terminal, so its output streams here live and a lost
connection hangs it up (SIGHUP: it tears its lab down); results come back into the local results
folder. Host keys are always checked: against known_hosts for ssh://, against a key pinned on
first contact for the Vagrant VM. A key that is unknown or changed is refused, never accepted.
"""
from __future__ import annotations

import codecs
import posixpath
import shlex
import socket
import stat
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import paramiko

from harness import runlog
from harness.errors import RunFailed, UserError
from harness.shipped import source_checkout

VAGRANT_DIR = source_checkout() or Path.cwd()     # where the Vagrantfile is (installed from a wheel: here)
PINNED_VAGRANT_KEYS = VAGRANT_DIR / ".vagrant" / "tcp-testbed-known_hosts"


@dataclass
class Remote:
    host: str
    port: int = 22
    user: str | None = None
    key_files: list[str] = field(default_factory=list)
    pinned_keys: Path | None = None      # None: check against ~/.ssh/known_hosts
    label: str = ""


def parse_ssh_target(text: str) -> Remote:
    """ssh://user@host[:port], completed from ~/.ssh/config (HostName, User, Port, IdentityFile)."""
    parts = urlsplit(text)
    if parts.scheme != "ssh" or not parts.hostname or parts.path not in ("", "/"):
        raise UserError(f"'{text}' is not an SSH target.", fix="write --target ssh://user@host or ssh://user@host:2222.")
    config = paramiko.SSHConfig()
    config_file = Path.home() / ".ssh" / "config"
    if config_file.is_file():
        config = paramiko.SSHConfig.from_path(str(config_file))
    found = config.lookup(parts.hostname)
    try:
        port = parts.port or int(found.get("port", 22))
    except ValueError:
        raise UserError(f"'{text}' has a bad port.", fix="write ssh://user@host:2222.") from None
    return Remote(found.get("hostname", parts.hostname), port, parts.username or found.get("user"),
                  list(found.get("identityfile", [])), None, text)


def vagrant_remote() -> Remote:
    """The Vagrant VM of this checkout, as `vagrant ssh-config` describes it."""
    try:
        done = runlog.run_command(["vagrant", "ssh-config"], cwd=VAGRANT_DIR, timeout=120)
    except FileNotFoundError:
        raise UserError("vagrant is not installed here.", fix="install Vagrant, then `vagrant up` in this checkout.") from None
    if done.returncode:
        raise UserError(f"`vagrant ssh-config` failed: {done.stderr.strip() or done.stdout.strip()}",
                        fix="start the VM with `vagrant up` in this checkout.")
    found = paramiko.SSHConfig.from_text(done.stdout).lookup("default")
    return Remote(found["hostname"], int(found.get("port", 22)), found.get("user"), list(found.get("identityfile", [])),
                  PINNED_VAGRANT_KEYS, "the Vagrant VM")


class _Refuse(paramiko.MissingHostKeyPolicy):
    """An unknown key: refuse, and say how to trust it after checking its fingerprint."""

    def missing_host_key(self, client, hostname, key):
        raise UserError(f"the host key of {hostname} is not in ~/.ssh/known_hosts ({key.get_name()} {key.fingerprint}); "
                        "refusing to connect to a machine nobody has vouched for.",
                        fix=f"check the fingerprint with the machine's owner, then run "
                            f"`ssh-keyscan -p {_port_of(hostname)} {_host_of(hostname)} >> ~/.ssh/known_hosts` "
                            "(or connect once with ssh and accept it).")


class _PinFirst(paramiko.MissingHostKeyPolicy):
    """Trust on first use for the Vagrant VM only: the first key seen is kept; a later change is refused."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def missing_host_key(self, client, hostname, key):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        keys = paramiko.HostKeys(str(self.path)) if self.path.exists() else paramiko.HostKeys()
        keys.add(hostname, key.get_name(), key)
        keys.save(str(self.path))


def _host_of(known_name: str) -> str:
    return known_name[1:].split("]:")[0] if known_name.startswith("[") else known_name


def _port_of(known_name: str) -> str:
    return known_name.rsplit("]:", 1)[1] if known_name.startswith("[") else "22"


def connect(remote: Remote) -> paramiko.SSHClient:
    client = paramiko.SSHClient()
    if remote.pinned_keys:
        if remote.pinned_keys.exists():
            client.load_host_keys(str(remote.pinned_keys))
        client.set_missing_host_key_policy(_PinFirst(remote.pinned_keys))
    else:
        known = Path.home() / ".ssh" / "known_hosts"
        if known.exists():
            client.load_host_keys(str(known))
        client.set_missing_host_key_policy(_Refuse())
    where = f"{remote.user + '@' if remote.user else ''}{remote.host}:{remote.port}"
    try:
        client.connect(remote.host, remote.port, username=remote.user, key_filename=remote.key_files or None,
                       timeout=20, banner_timeout=20, auth_timeout=20)
    except paramiko.BadHostKeyException as exc:
        fix = (f"if the VM was re-created, delete {remote.pinned_keys} and try again." if remote.pinned_keys else
               f"if the owner confirms the machine's key changed, remove the old one: "
               f"`ssh-keygen -R '[{remote.host}]:{remote.port}'` (or `ssh-keygen -R {remote.host}` on port 22), then trust the new one.")
        raise UserError(f"the host key of {where} has CHANGED (now {exc.key.get_name()} {exc.key.fingerprint}, "
                        f"expected {exc.expected_key.fingerprint}); refusing to connect: it may not be the machine you think.",
                        fix=fix) from None
    except paramiko.AuthenticationException as exc:
        raise UserError(f"{where} refused our SSH credentials ({exc}).",
                        fix="give the user in the target (ssh://user@host) and a key in ~/.ssh (or IdentityFile in ~/.ssh/config).") from None
    except (OSError, paramiko.SSHException) as exc:
        raise UserError(f"cannot reach {where} over SSH: {exc}.", fix="check the host, the port and that sshd runs there.") from None
    return client


def _get_tree(sftp: paramiko.SFTPClient, remote_dir: str, local_dir: Path) -> int:
    """Copy remote_dir into local_dir; the number of files copied."""
    count = 0
    local_dir.mkdir(parents=True, exist_ok=True)
    for entry in sftp.listdir_attr(remote_dir):
        source, target = posixpath.join(remote_dir, entry.filename), local_dir / entry.filename
        if stat.S_ISDIR(entry.st_mode):
            count += _get_tree(sftp, source, target)
        else:
            sftp.get(source, str(target))
            count += 1
    return count


def _uploads(experiments: list, remote_dir: str) -> tuple[dict[Path, str], list[str]]:
    """Each experiment file and the topology it names, side by side in the remote folder."""
    files, names = {}, []
    for path, topology_source in experiments:
        files[path.resolve()] = posixpath.join(remote_dir, path.name)
        files[topology_source.resolve()] = posixpath.join(remote_dir, topology_source.name)
        names.append(path.name)
    if len(set(files.values())) < len(files):
        raise UserError("two of the files to upload share a name.", fix="rename one, or run them one at a time.")
    return files, names


class TerminalText:
    """Bytes from the remote pty to text: a UTF-8 character or a CR LF cut between two reads stays whole."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._cr = False            # the last chunk ended in CR: it may be half of a CR LF

    def feed(self, data: bytes, final: bool = False) -> str:
        text = ("\r" if self._cr else "") + self._decoder.decode(data, final)
        self._cr = text.endswith("\r") and not final
        return (text[:-1] if self._cr else text).replace("\r\n", "\n")

    def flush(self) -> str:
        return self.feed(b"", final=True)


def as_runner(argv: list[str]) -> str:
    """argv as the run's user: root as is, anyone else through `sudo -n` (the lab needs root)."""
    line = shlex.join(argv)
    return f'if [ "$(id -u)" = 0 ]; then {line}; else sudo -n {line}; fi'


def run_command(remote_dir: str, passthrough: list[str], names: list[str]) -> str:
    """The remote command line; `--` keeps a file named like an option (-x.yaml) a file."""
    return f"cd {shlex.quote(remote_dir)} && " + as_runner(
        ["run-experiment", "--results-dir", f"{remote_dir}/results", *passthrough, "--", *names])


def cleanup_command(remote_dir: str) -> str:
    """Removes the remote folder with the run's privilege: under sudo its results are root's."""
    return "cd / && " + as_runner(["rm", "-rf", "--", remote_dir])


def _exec(client: paramiko.SSHClient, command: str, limit_s: float = 120) -> tuple[int, str]:
    """Run a short command and wait for its exit status (-1: none came within limit_s)."""
    channel = client.get_transport().open_session(timeout=limit_s)
    try:
        channel.settimeout(limit_s)
        began = time.monotonic()
        channel.exec_command(command)
        out = channel.makefile("rb").read().decode(errors="replace")
        code = channel.exit_status if channel.status_event.wait(limit_s) else -1
        runlog.log_command(command, code, time.monotonic() - began, where="ssh", stderr=out)
        return code, out
    finally:
        channel.close()


def _make_remote_dir(client: paramiko.SSHClient, remote: Remote) -> str:
    """A fresh folder nobody could have made in advance (mktemp -d: random name, mode 700)."""
    try:
        code, out = _exec(client, "mktemp -d /tmp/tcp-testbed.XXXXXXXXXX")
    except (OSError, EOFError, paramiko.SSHException) as exc:
        code, out = -1, str(exc)
    folder = out.strip()
    if code != 0 or not folder.startswith("/tmp/tcp-testbed.") or "\n" in folder:
        raise RunFailed(f"cannot make a folder on {remote.label} (`mktemp -d` said: {out.strip() or code}).")
    return folder


def run_over_ssh(remote: Remote, experiments: list, passthrough: list[str], results_root: Path) -> int:
    """Run the experiments (a list of (experiment file, topology file)) on the remote; copy the results back."""
    client = connect(remote)
    runlog.say(f"connected to {remote.label} ({remote.host}:{remote.port})")
    remote_dir = None
    try:
        remote_dir = _make_remote_dir(client, remote)
        sftp = client.open_sftp()
        files, names = _uploads(experiments, remote_dir)
        for local, remote_path in files.items():
            sftp.put(str(local), remote_path)
        code = _stream(client, run_command(remote_dir, passthrough, names), remote)
        if code == 127:
            raise UserError(f"run-experiment is not installed on {remote.label}.",
                            fix="set the test bed up there: clone it and run `sudo scripts/setup` (the Vagrantfile does this).")
        copied = 0
        try:
            copied = _get_tree(sftp, f"{remote_dir}/results", results_root)
        except FileNotFoundError:
            pass
        runlog.say(f"copied {copied} result file(s) from {remote.label} into {results_root}/")
        return code
    except (OSError, EOFError, paramiko.SSHException) as exc:      # SFTP: a full disk, a permission, a dropped link
        raise RunFailed(f"copying files to or from {remote.label} failed: {exc or type(exc).__name__}.") from None
    finally:
        if remote_dir:
            _remove_remote_dir(client, remote, remote_dir)
        client.close()


def _remove_remote_dir(client: paramiko.SSHClient, remote: Remote, remote_dir: str) -> None:
    """rm -rf with the run's privilege, waited for; says so when the folder stays behind."""
    try:
        code, out = _exec(client, cleanup_command(remote_dir))
    except (OSError, EOFError, paramiko.SSHException) as exc:
        code, out = -1, str(exc)
    if code != 0:
        runlog.say(f"warning: could not remove {remote_dir} on {remote.label} ({out.strip() or 'no exit status'}); "
            f"remove it there with `sudo rm -rf {remote_dir}`.")


def _stream(client: paramiko.SSHClient, command: str, remote: Remote) -> int:
    """Run under a pty and print its output as it comes; Ctrl-C here is Ctrl-C there.

    The end of the output and the exit status are separate messages: the loop runs until both came
    (or the channel closed), and a missing status counts as a lost connection only when the
    connection really is gone."""
    transport = client.get_transport()
    channel = transport.open_session()
    channel.get_pty(width=120)
    began = time.monotonic()
    runlog.log_started(command, None, where=f"ssh {remote.label}")
    channel.exec_command(command)
    channel.settimeout(0.5)
    out, text = sys.stdout, TerminalText()
    interrupted_at, eof = None, False
    while not (eof and channel.status_event.is_set()):
        try:
            if eof:
                channel.status_event.wait(0.5)
            else:
                try:
                    data = channel.recv(4096)
                except socket.timeout:
                    data = None
                if data:
                    out.write(text.feed(data))
                    out.flush()
                eof = data == b""
            if not transport.is_active() and not channel.status_event.is_set():
                break
            if interrupted_at and time.time() - interrupted_at > 120:
                break
        except KeyboardInterrupt:
            if interrupted_at:
                raise
            runlog.say(f"interrupted: stopping the run on {remote.label} (it tears its lab down)...")
            channel.send(b"\x03")
            interrupted_at = time.time()
    out.write(text.flush())
    out.flush()
    code = channel.exit_status if channel.status_event.is_set() else -1
    runlog.log_command(command, code, time.monotonic() - began, where=f"ssh {remote.label}")
    if code != -1:
        return 130 if interrupted_at else code
    if interrupted_at:
        return 130
    if _alive(transport):
        raise RunFailed(f"the run on {remote.label} ended without an exit status (killed by a signal?); "
                        "no results were copied back.")
    raise RunFailed(f"the connection to {remote.label} was lost mid-run. The remote run was hung up (SIGHUP), "
                    "which makes it tear its lab down; no results were copied back.")


def _alive(transport: paramiko.Transport) -> bool:
    """Whether the connection still carries traffic: a channel that closes while the transport
    winds down reads as closed before the transport reads as inactive, so ask the server."""
    if not transport.is_active():
        return False
    try:
        transport.open_session(timeout=20).close()
        return True
    except (OSError, EOFError, paramiko.SSHException):
        return False
