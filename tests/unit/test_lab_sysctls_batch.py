"""Sysctls set and read back in one process per host (harness.lab.sysctls): the batch, the
one-by-one fallback that names a failing setting or skips an optional one, and the refusal of a
setting that is not per namespace. A stand-in host answers like `sysctl` would."""
from __future__ import annotations

import shlex
from types import SimpleNamespace

import pytest

from harness.errors import RunFailed
from harness.lab import sysctls
from harness.lab.sysctls import WATCHED, apply_sysctls


class Host:
    """A host's namespace: its sysctls, the ones its kernel lacks, every command it was asked."""

    def __init__(self, lacks=()):
        self.values = {name: "1" for name in WATCHED}
        self.lacks, self.commands = set(lacks), []

    def pexec(self, args):
        self.commands.append(args)
        if args[:2] == ["sh", "-c"]:
            outs = [self.pexec(shlex.split(part)) for part in args[2].split(" && ")]
            failed = next((o for o in outs if o[2]), None)
            return failed or ("".join(o[0] for o in outs), "", 0)
        if "-w" in args:
            settings = [a.split("=", 1) for a in args if "=" in a]
            bad = [name for name, _ in settings if name in self.lacks]
            self.values.update({name: value for name, value in settings if name not in self.lacks})
            return "", "".join(f"sysctl: cannot stat /proc/sys/{n}\n" for n in bad), int(bool(bad))
        names = [a for a in args[1:] if not a.startswith("-")]
        if "-n" in args:
            return "".join(f"{self.values[n]}\n" for n in names if n in self.values), "", 0
        return "".join(f"{n} = {self.values[n]}\n" for n in names if n in self.values), "", 0


def experiment(sets: dict, optional=frozenset()):
    return SimpleNamespace(topology=SimpleNamespace(hosts=["client"]), sysctls={"all": sets},
                           optional_sysctls=optional, expect_source=None)


def net(host):
    return SimpleNamespace(get=lambda name: host)


@pytest.fixture
def machine(monkeypatch):
    """The machine's own values, as _machine_value reads them (here: never changed by a host)."""
    values: dict[str, str] = {}
    monkeypatch.setattr(sysctls, "_machine_value", lambda name: values.get(name, "0"))
    monkeypatch.setattr(sysctls, "run_command", lambda args, **kw: None)
    return values


def test_every_setting_and_the_read_back_are_one_process(machine):
    host = Host()
    got, skipped = apply_sysctls(net(host), experiment({"net.ipv4.tcp_syn_retries": 3, "net.ipv4.tcp_rmem": "4096 8192 16384"}))
    assert len(host.commands) == 1 + 2      # the shell, and (as the stand-in runs it) its two sysctls
    script = host.commands[0][2]
    assert script.startswith("sysctl -q -w net.ipv4.tcp_syn_retries=3 'net.ipv4.tcp_rmem=4096 8192 16384' && sysctl -e ")
    assert got["client"]["net.ipv4.tcp_syn_retries"] == "3" and got["client"]["net.ipv4.tcp_rmem"] == "4096 8192 16384"
    assert skipped == []


def test_nothing_to_set_is_one_read(machine):
    host = Host()
    got, _ = apply_sysctls(net(host), experiment({}))
    assert host.commands == [["sysctl", "-e", *sorted(WATCHED)]] and got["client"]["net.ipv4.tcp_sack"] == "1"


def test_an_optional_setting_the_kernel_lacks_is_skipped_and_said(machine):
    host = Host(lacks={"net.ipv4.tcp_new_thing"})
    got, skipped = apply_sysctls(net(host), experiment({"net.ipv4.tcp_new_thing": 1, "net.ipv4.tcp_sack": 0},
                                                       optional=frozenset({"net.ipv4.tcp_new_thing"})))
    assert got["client"]["net.ipv4.tcp_sack"] == "0" and "net.ipv4.tcp_new_thing" not in got["client"]
    assert len(skipped) == 1 and "sysctl net.ipv4.tcp_new_thing not set in client" in skipped[0]


def test_a_setting_that_fails_is_named(machine):
    host = Host(lacks={"net.ipv4.tcp_new_thing"})
    with pytest.raises(RunFailed, match=r"sysctl net.ipv4.tcp_new_thing=1 failed in client: .* net.ipv4.tcp_new_thing\?: 1"):
        apply_sysctls(net(host), experiment({"net.ipv4.tcp_new_thing": 1}))


def machine_wide(monkeypatch, host: Host, values: dict[str, str], after: dict[str, str], fails: bool = False) -> list:
    """These sysctls are not per namespace: the host's batch writes the machine's (`values`
    becomes `after`); returns the put-back commands run (each failing when `fails`)."""
    put_back: list = []
    real_pexec = host.pexec

    def pexec(args):
        if args[:2] == ["sh", "-c"]:
            values.update(after)
        return real_pexec(args)

    def run_command(args, **kw):
        put_back.append(args)
        if not fails:
            values.update(a.split("=", 1) for a in args if "=" in a)
        return SimpleNamespace(returncode=int(fails), stdout="", stderr="sysctl: permission denied" if fails else "")
    host.pexec = pexec
    monkeypatch.setattr(sysctls, "_machine_value", lambda name: values.get(name))
    monkeypatch.setattr(sysctls, "run_command", run_command)
    return put_back


def test_a_setting_that_changes_the_whole_machine_is_put_back_and_refused(monkeypatch):
    values, host = {"net.core.somaxconn": "4096"}, Host()
    put_back = machine_wide(monkeypatch, host, values, {"net.core.somaxconn": "128"})
    with pytest.raises(RunFailed, match=r"sysctl net.core.somaxconn \('4096' -> '128'\) is not per network namespace "
                                        r".* for the whole machine \(put back\)\. .* Fix: "):
        apply_sysctls(net(host), experiment({"net.core.somaxconn": 128}))
    assert put_back == [["sysctl", "-q", "-w", "net.core.somaxconn=4096"]] and values == {"net.core.somaxconn": "4096"}


def test_every_machine_wide_setting_is_put_back_in_one_process_and_named_in_one_error(monkeypatch):
    """Two settings that are not per namespace: the first found must not leave the second changed."""
    values = {"net.core.somaxconn": "4096", "net.core.rmem_max": "212992"}
    host = Host()
    put_back = machine_wide(monkeypatch, host, values, {"net.core.somaxconn": "128", "net.core.rmem_max": "1000000"})
    with pytest.raises(RunFailed) as failed:
        apply_sysctls(net(host), experiment({"net.core.somaxconn": 128, "net.core.rmem_max": 1000000,
                                             "net.ipv4.tcp_sack": 0}))
    assert put_back == [["sysctl", "-q", "-w", "net.core.somaxconn=4096", "net.core.rmem_max=212992"]]
    assert values == {"net.core.somaxconn": "4096", "net.core.rmem_max": "212992"}
    message = str(failed.value)
    assert "\n" not in message and message.startswith(
        "sysctls net.core.somaxconn ('4096' -> '128'), net.core.rmem_max ('212992' -> '1000000') are not per network namespace")
    assert "(put back)" in message and "tcp_sack" not in message


def test_a_put_back_that_fails_is_said(monkeypatch):
    values = {"net.core.somaxconn": "4096"}
    host = Host()
    machine_wide(monkeypatch, host, values, {"net.core.somaxconn": "128"}, fails=True)
    with pytest.raises(RunFailed, match=r"for the whole machine \(putting back failed: sysctl: permission denied\)"):
        apply_sysctls(net(host), experiment({"net.core.somaxconn": 128}))


def test_one_by_one_a_machine_wide_setting_is_refused_too(monkeypatch):
    """The fallback after a failing batch checks each setting it writes the same way."""
    values = {"net.core.somaxconn": "4096"}
    host = Host()
    put_back = machine_wide(monkeypatch, host, values, {})
    real_pexec = host.pexec

    def pexec(args):
        if args[:3] == ["sysctl", "-w", "net.core.somaxconn=128"]:
            values["net.core.somaxconn"] = "128"
        if args[:2] == ["sh", "-c"]:
            return "", "sysctl: some failure", 1
        return real_pexec(args)
    host.pexec = pexec
    with pytest.raises(RunFailed, match=r"sysctl net.core.somaxconn \('4096' -> '128'\) is not per network namespace"):
        apply_sysctls(net(host), experiment({"net.core.somaxconn": 128}))
    assert put_back == [["sysctl", "-q", "-w", "net.core.somaxconn=4096"]]


def test_the_machine_value_is_read_from_proc_sys_as_sysctl_names_it():
    assert sysctls._machine_value("net.ipv4.tcp_syn_retries") == " ".join(
        open("/proc/sys/net/ipv4/tcp_syn_retries").read().split())
    assert sysctls._machine_value("net.ipv4.no_such_setting") is None


def test_a_name_written_with_slashes_is_read_as_the_path_it_is():
    """sysctl keeps a name whose first separator is a slash (procps' slashdot): so does the check."""
    assert sysctls._machine_value("net/ipv4/tcp_syn_retries") == sysctls._machine_value("net.ipv4.tcp_syn_retries") is not None
    assert sysctls._machine_value("net/ipv4/no_such_setting") is None


def test_the_loader_takes_dotted_sysctl_names_only():
    """So no slash-form name reaches the lab from an experiment (the check above is for safety)."""
    from harness.errors import UserError
    from harness.load.names import sysctl_name
    assert sysctl_name("net.ipv4.tcp_sack", "x.yaml", 3) == "net.ipv4.tcp_sack"
    for name in ("net/ipv4/tcp_sack", "net.ipv4.conf.eth0/1.rp_filter"):
        with pytest.raises(UserError, match="x.yaml:3: .* is not a sysctl name"):
            sysctl_name(name, "x.yaml", 3)
