"""Check the machine has what a run needs before touching anything; refuse with the fix."""
from __future__ import annotations

import functools
import gzip
import os
import shutil
from pathlib import Path

from harness.errors import UserError
from harness.model import Experiment
from harness.runlog import run_command

SETUP = "run scripts/setup (as root) to install it"


# The kernel send capture's features (harness.record.kernel_sends), built in without a trace in
# /sys/module or modules.builtin on a kernel built without modules (this machine's 6.18): their
# config symbols, read from /proc/config.gz. Only these: other modules are judged as before.
_CONFIG_SYMBOL = {"sch_ingress": "CONFIG_NET_SCH_INGRESS", "act_mirred": "CONFIG_NET_ACT_MIRRED",
                  "dummy": "CONFIG_DUMMY", "cls_matchall": "CONFIG_NET_CLS_MATCHALL", "cls_u32": "CONFIG_NET_CLS_U32"}
# dummy's default (numdummies=1) makes a dummy0 in the root namespace that would outlive the run
_MODPROBE_ARGS = {"dummy": ["numdummies=0"]}
SEND_CAPTURE_MODULES = ["sch_ingress", "act_mirred"]    # clsact and mirred: the capture needs both


@functools.cache
def _kernel_config() -> str:
    try:
        return gzip.decompress(Path("/proc/config.gz").read_bytes()).decode(errors="replace")
    except OSError:
        return ""


@functools.cache   # asked once per cell of a sweep; the machine does not change meanwhile
def kernel_has_module(name: str, load: bool = True) -> bool:
    """Built in, loaded, or loadable. With `load` a module that is neither is loaded (modprobe:
    proves it loads, and the run needs it loaded anyway); without, the check only reads (a module
    on disk, in modules.dep, counts): run-experiment --check must change nothing."""
    if Path(f"/sys/module/{name}").exists():
        return True
    if name in _CONFIG_SYMBOL and f"\n{_CONFIG_SYMBOL[name]}=y\n" in _kernel_config():
        return True
    modules = Path(f"/lib/modules/{os.uname().release}")
    for index in ("modules.builtin",) + (() if load else ("modules.dep",)):
        if (modules / index).exists() and f"/{name}.ko" in (modules / index).read_text():
            return True
    return load and run_command(["modprobe", "-q", name, *_MODPROBE_ARGS.get(name, [])]).returncode == 0


def send_capture_kinds() -> tuple[str, str]:
    """The kernel send capture's device and filter: a dummy and matchall where the kernel has
    them, else a veth pair and u32 matching every frame (same hook, same mirror)."""
    return ("dummy" if kernel_has_module("dummy") else "veth",
            "matchall" if kernel_has_module("cls_matchall") else "u32")


def needed_modules(experiment: Experiment) -> list[str]:
    mods = list(SEND_CAPTURE_MODULES)     # every run records its hosts' kernel send times
    links = experiment.topology.links
    if any(d.needs_netem for link in links for d in (link.a_to_b, link.b_to_a)):
        mods.append("sch_netem")
    if any(d.bw_mbit for link in links for d in (link.a_to_b, link.b_to_a)):
        mods.append("sch_htb")
    if experiment.topology.switch_kind == "ovs" and experiment.topology.switches:
        mods.append("openvswitch")
    if any(step.action != "drop" for step in experiment.network):
        mods += ["sch_prio", "cls_fw", "sch_netem"]
    return list(dict.fromkeys(mods))


@functools.cache
def nft_picks_work() -> bool:
    """Network steps need nftables bridge rules with `numgen`: try one (often built in, so a
    module check would wrongly say no)."""
    if shutil.which("nft") is None:
        return True     # reported as a missing tool, with the package to install
    table = f"tcptestbed_probe_{os.getpid()}"
    ruleset = (f"table bridge {table} {{\n chain rules {{\n type filter hook forward priority 0; policy accept;\n"
               f" ip protocol tcp numgen inc mod 10 == 0 counter\n }}\n}}\n")
    ok = run_command(["nft", "-f", "-"], input=ruleset).returncode == 0
    run_command(["nft", "delete", "table", "bridge", table])
    return ok


def load_modules(names: list[str]) -> None:
    """Load every module of `names` not loaded yet with one modprobe: each process costs 0.1-0.3 s
    of wall time under emulation, and the first run in a VM loads six. What fails to load is
    found (and named) by kernel_has_module's own modprobe afterwards."""
    absent = [n for n in names if n not in _MODPROBE_ARGS and not Path(f"/sys/module/{n}").exists()]
    if len(absent) > 1 and shutil.which("modprobe", path="/usr/sbin:/sbin:" + os.environ.get("PATH", "")):
        run_command(["modprobe", "-q", "-a", *absent])


def missing_kernel_features(experiment: Experiment, load: bool = True) -> list[str]:
    """What the experiment needs that this kernel lacks. `load=False` only reads (--check): no
    modprobe, and no nft probe (it adds a table), so nftables is then assumed to work."""
    if load:
        load_modules(needed_modules(experiment) + ["cls_matchall"])
    missing = [m for m in needed_modules(experiment) if not kernel_has_module(m, load)]
    if not (kernel_has_module("cls_matchall", load) or kernel_has_module("cls_u32", load)):
        missing.append("a tc filter matching every frame (cls_matchall or cls_u32)")
    if load and experiment.network and not nft_picks_work():
        missing.append("nftables bridge rules with numgen (nf_tables, nft_numgen)")
    return missing


def check_local(experiment: Experiment) -> None:
    if os.geteuid() != 0:
        raise UserError("building a lab needs root (network namespaces, tc, tcpdump).",
                        fix="run it with sudo, e.g. sudo .venv/bin/run-experiment handshake.yaml.")
    check_tools(experiment)
    missing = missing_kernel_features(experiment)
    if missing:
        raise UserError(f"kernel {os.uname().release} lacks {', '.join(missing)}, which this experiment's "
                        "links or network steps need.", file=str(experiment.source),
                        fix="use --target vm (or auto) to run on a kernel that has it.")


def check_tools(experiment: Experiment) -> None:
    """Every program the local run will call, and Mininet, is there (changes nothing)."""
    for tool in ("mnexec", "tcpdump", "tc", "ip", "brctl", "ethtool"):
        if shutil.which(tool) is None:
            raise UserError(f"'{tool}' is not installed.", fix=SETUP + ".")
    if experiment.network and shutil.which("nft") is None:
        raise UserError("this experiment's network steps need nftables ('nft'), which is not installed.",
                        file=str(experiment.source), fix=SETUP + " (package nftables).")
    if experiment.topology.switch_kind == "ovs" and shutil.which("ovs-vsctl") is None:
        raise UserError("the topology asks for Open vSwitch but 'ovs-vsctl' is not installed.",
                        file=str(experiment.topology.source), fix=SETUP + " (package openvswitch-switch).")
    try:
        import mininet  # noqa: F401
    except ImportError:
        raise UserError("the Mininet Python module is not importable from this interpreter.",
                        fix="use the venv made by scripts/setup (it sees Debian's python3-mininet).")
