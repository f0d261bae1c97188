"""Expectations that follow the kernel: ${...} over `kernel` and HOST.sysctl, `when:`, optional
sysctls and the matrix value `default` — loaded provisionally, worked out again with a lab's facts."""
import textwrap

import pytest

from harness.errors import UserError
from harness.load import load_cells
from harness.load.experiment import with_facts
from harness.load.expressions import FactMissing, FactsNotHere, evaluate
from harness.load.facts import FactsUse, RunFacts, describe_facts, version_of

LINEAR = "net.ipv4.tcp_syn_linear_timeouts"
K61 = RunFacts("6.1.0-57-amd64", {"client": {LINEAR: None, "net.ipv4.tcp_syn_retries": "3"}})     # read back: absent
K612 = RunFacts("6.12.118+deb12-amd64", {"client": {"net.ipv4.tcp_syn_linear_timeouts": "4", "net.ipv4.tcp_syn_retries": "3"}})


def test_kernel_compares_as_a_version_not_a_float():
    assert evaluate("kernel >= 6.12", {}, K612) is True and evaluate("kernel >= 6.12", {}, K61) is False
    assert evaluate("kernel > 6.2", {}, K612) is True            # 6.12 > 6.2 as versions (as floats: 6.12 < 6.2)
    assert evaluate("6.1 <= kernel < 6.12", {}, K61) is True and evaluate("6.1 <= kernel < 6.12", {}, K612) is False
    assert evaluate("kernel == '6.12.118'", {}, K612) is True
    assert version_of("6.12.118+deb12-amd64") == (6, 12, 118)


def test_if_else_default_min_max_and_booleans():
    assert evaluate("1 if kernel >= 6.12 else 2", {}, K612) == 1 and evaluate("1 if kernel >= 6.12 else 2", {}, K61) == 2
    assert evaluate("default(client.tcp_syn_linear_timeouts, 0)", {}, K612) == 4
    assert evaluate("default(client.tcp_syn_linear_timeouts, 0)", {}, K61) == 0
    assert evaluate("max(1, 2**r) + min(3, 4)", {"r": 3}, None) == 11
    assert evaluate("not (r > 2 and r < 5) or r == 9", {"r": 3}) is False


def test_what_an_expression_reads_is_recorded():
    use = FactsUse()
    evaluate("2**client.tcp_syn_retries + default(client.tcp_syn_linear_timeouts, 0)", {}, K612, use)
    assert use.sysctls == {"client": {"net.ipv4.tcp_syn_retries", "net.ipv4.tcp_syn_linear_timeouts"}} and not use.kernel
    use = FactsUse()
    evaluate("default(client.tcp_syn_linear_timeouts, 0)", {}, K61, use)     # absent: still read back next time
    assert use.sysctls == {"client": {"net.ipv4.tcp_syn_linear_timeouts"}}


@pytest.mark.parametrize("expression, error, words", [
    ("client.tcp_syn_linear_timeouts", FactMissing, "default(client.tcp_syn_linear_timeouts"),
    ("client.tcp_syn_linear_timeout", ValueError, "no kernel knows"),       # a typo is not "this kernel lacks it"
    ("kernel + 1", ValueError, "compare it"),
    ("kernel >= r", ValueError, "version written out"),
    ("open('x')", ValueError, "not known here"),
    ("kernel", ValueError, ""),
])
def test_facts_misused_are_refused(expression, error, words):
    with pytest.raises(error) as info:
        result = evaluate(expression, {"r": 1}, K61)
        if expression == "kernel":          # alone it is not a number: the substitution refuses it
            raise ValueError(str(result))
    assert words in str(info.value)


def test_facts_outside_expect_are_refused():
    with pytest.raises(FactsNotHere):
        evaluate("kernel >= 6.12", {})
    with pytest.raises(FactsNotHere):
        evaluate("client.tcp_syn_retries", {})


EXPERIMENT = """\
    name: kfacts
    topology: two_hosts
    duration: 20s
    sysctls:
      client: {net.ipv4.tcp_syn_retries: 3, "net.ipv4.tcp_syn_linear_timeouts?": 2}
    steps:
      - {at: 0s, on: server, listen: 5001}
      - {at: 0.5s, on: client, connect: server:5001}
    expect:
      client: {states: [SYN-SENT, ESTAB]}
      packets:
        - {from: client, flags: S}
        - {when: kernel >= 6.12, from: client, flags: S}
      timing:
        old: {when: "kernel < 6.12", from: client sends S#1, to: client sends S#2, between: [1s, 1.1s]}
        linear: {when: "${default(client.tcp_syn_linear_timeouts, 0) > 0}", from: client sends S#1, to: client sends S#2,
                 between: ["${default(client.tcp_syn_linear_timeouts, 0)}s", 5s]}
"""


def _load(tmp_path, text=EXPERIMENT):
    path = tmp_path / "kfacts.yaml"
    path.write_text(textwrap.dedent(text))
    return load_cells(path)[0].experiment


def test_when_keeps_or_drops_expectations_per_kernel(tmp_path):
    experiment = _load(tmp_path)
    assert experiment.optional_sysctls == frozenset({"net.ipv4.tcp_syn_linear_timeouts"})
    assert experiment.sysctls["client"]["net.ipv4.tcp_syn_linear_timeouts"] == "2"
    assert experiment.expect_source.kernel and experiment.expect_source.sysctls == {
        "client": frozenset({"net.ipv4.tcp_syn_linear_timeouts"})}
    old = with_facts(experiment, K61)
    assert [t.name for t in old.expect.timing] == ["old"] and len(old.expect.packets) == 1
    new = with_facts(experiment, RunFacts("6.12.118", {"client": {"net.ipv4.tcp_syn_linear_timeouts": "2"}}))
    assert [t.name for t in new.expect.timing] == ["linear"] and len(new.expect.packets) == 2
    assert str(new.expect.timing[0].between[0]) == "2s"
    assert "client net.ipv4.tcp_syn_linear_timeouts = 2" in describe_facts(new, RunFacts("6.12", {"client": {
        "net.ipv4.tcp_syn_linear_timeouts": "2"}}))
    assert "absent" in describe_facts(old, K61)


def test_an_experiment_without_facts_is_left_as_it_is(tmp_path):
    experiment = _load(tmp_path, EXPERIMENT.split("    expect:")[0] + "    expect:\n      client: {states: [SYN-SENT, ESTAB]}\n")
    assert experiment.expect_source is None and with_facts(experiment, K61) is experiment


@pytest.mark.parametrize("old, new, words", [
    ("duration: 20s", "duration: ${20 if kernel >= 6.12 else 30}s", "expect: (and about:) only"),
    ("between: [1s, 1.1s]", "between: [\"${client.tcp_syn_linear_timeouts}s\", 2s]", None),
    ("when: \"kernel < 6.12\"", "when: \"kernel < r\"", "not arithmetic"),
    ("when: \"kernel < 6.12\"", "when: [1]", "is not a condition"),
    ("from: client sends S#1, to: client sends S#2, between: [1s", "from: \"${client.tcp_syn_retries}\", to: x, between: [1s",
     None),
    ("- {when: kernel >= 6.12,", "- {when: nosuchhost.tcp_syn_retries > 1,", "nosuchhost"),
])
def test_bad_fact_expressions_name_the_line(tmp_path, old, new, words):
    text = EXPERIMENT.replace(old, new, 1)
    assert text != EXPERIMENT
    try:
        experiment = _load(tmp_path, text)
    except UserError as exc:
        assert words is None or words in str(exc) + (exc.fix or ""), str(exc)
        assert exc.line is not None
        return
    # loaded provisionally (this machine's kernel has the setting): the lab's facts decide
    with pytest.raises(UserError) as info:
        with_facts(experiment, K61)
    assert "default(" in (info.value.fix or "") or "kfacts.yaml" in str(info.value.file)


def test_matrix_optional_sysctl_and_the_kernel_default(tmp_path):
    sysctls = '    sysctls:\n      client: {net.ipv4.tcp_syn_retries: 3, "net.ipv4.tcp_syn_linear_timeouts?": 2}\n'
    text = EXPERIMENT.replace(sysctls, "    matrix:\n      client:\n        net.ipv4.tcp_syn_linear_timeouts?: [0, 4, default]\n")
    assert text != EXPERIMENT
    (tmp_path / "m.yaml").write_text(textwrap.dedent(text))
    cells = load_cells(tmp_path / "m.yaml")
    assert [c.label for c in cells] == [f"tcp_syn_linear_timeouts={v}@client" for v in ("0", "4", "default")]
    assert [c.experiment.sysctls.get("client", {}).get("net.ipv4.tcp_syn_linear_timeouts") for c in cells] == ["0", "4", None]
    assert all(c.experiment.optional_sysctls == frozenset({"net.ipv4.tcp_syn_linear_timeouts"}) for c in cells[:2])


def test_an_unquoted_optional_name_in_braces_gets_a_hint(tmp_path):
    text = EXPERIMENT.replace('"net.ipv4.tcp_syn_linear_timeouts?": 2', "net.ipv4.tcp_syn_linear_timeouts?: 2")
    with pytest.raises(UserError) as info:
        _load(tmp_path, text)
    assert "needs quotes" in info.value.fix and info.value.line == 5


def test_a_fact_in_a_branch_not_taken_at_load_is_still_read_back(tmp_path):
    text = EXPERIMENT.replace('linear: {when: "${default(client.tcp_syn_linear_timeouts, 0) > 0}"',
                              'linear: {when: "${default(client.tcp_syn_linear_timeouts, client.tcp_retries1 - 3) > 0}"')
    assert text != EXPERIMENT
    experiment = _load(tmp_path, text)       # provisional: the file sets the linear timeouts, the fallback not taken
    assert experiment.expect_source.sysctls["client"] == {LINEAR, "net.ipv4.tcp_retries1"}
    with_facts(experiment, RunFacts("6.1", {"client": {LINEAR: None, "net.ipv4.tcp_retries1": "3"}}))


@pytest.mark.parametrize("literal", ["0x6", "1e5", "6_1", "6.1e1", '"6.12abc"', "-6"])
def test_a_version_is_written_out(literal):
    with pytest.raises(ValueError, match="version written out"):
        evaluate(f"kernel > {literal}", {}, K612)


def test_a_short_version_names_a_series():
    assert evaluate("kernel <= 6.12", {}, K612) and evaluate("kernel == 6.12", {}, K612)
    assert not evaluate("kernel > 6.12", {}, K612) and evaluate("kernel < 6.13", {}, K612)
    assert evaluate("kernel > '6.12.100'", {}, K612) and not evaluate("kernel == 6", {}, K61) is False


@pytest.mark.parametrize("when", ["kernel", "${kernel}", "1 if 0 else kernel"])
def test_the_kernel_alone_is_not_a_condition(tmp_path, when):
    text = EXPERIMENT.replace('when: "kernel < 6.12"', f'when: "{when}"')
    with pytest.raises(UserError, match="not true or false"):
        _load(tmp_path, text)


def test_let_keeps_exact_values_and_refuses_truth_values(tmp_path):
    text = EXPERIMENT.replace("    steps:", '    let: {x: 1048576.5, y: 1/3, z: y*3}\n    steps:').replace(
        'when: "kernel < 6.12"', 'when: "x == 1048576.5 and z == 1"')
    assert [t.name for t in with_facts(_load(tmp_path, text), K61).expect.timing] == ["old"]
    for bad in ("{x: 1 < 2}", "{x: kernel}", "{if: 1}", "{x: true + 1}"):
        with pytest.raises(UserError):
            _load(tmp_path, EXPERIMENT.replace("    steps:", f"    let: {bad}\n    steps:"))


def test_matrix_default_also_removes_the_files_own_value(tmp_path):
    text = EXPERIMENT.replace('"net.ipv4.tcp_syn_linear_timeouts?": 2', "net.ipv4.tcp_syn_retries: 3").replace(
        "    steps:", "    matrix: {client: {net.ipv4.tcp_syn_retries: [1, default]}}\n    steps:")
    text = text.replace("{net.ipv4.tcp_syn_retries: 3, net.ipv4.tcp_syn_retries: 3}", "{net.ipv4.tcp_syn_retries: 2}")
    cells = load_cells(_write(tmp_path, text))
    assert [c.experiment.sysctls["client"].get("net.ipv4.tcp_syn_retries") for c in cells] == ["1", None]
    with pytest.raises(UserError, match="matrix value"):
        _load(tmp_path, EXPERIMENT.replace('"net.ipv4.tcp_syn_linear_timeouts?": 2', '"net.ipv4.tcp_syn_linear_timeouts?": default'))


def _write(tmp_path, text):
    path = tmp_path / "w.yaml"
    path.write_text(textwrap.dedent(text))
    return path


@pytest.mark.parametrize("old, new", [
    ("      client: {states: [SYN-SENT, ESTAB]}\n      packets:", "      when: kernel < 6.12\n      client: {states: [SYN-SENT, ESTAB]}\n      packets:"),
    ("    expect:\n", "    expect:\n      only: {when: false, states: [LISTEN]}\n"),
])
def test_a_file_left_with_no_expectation_is_refused(tmp_path, old, new):
    text = EXPERIMENT.split("      packets:")[0].replace("      client: {states: [SYN-SENT, ESTAB]}\n", "") if "only" in new \
        else EXPERIMENT
    text = text.replace(old, new)
    with pytest.raises(UserError, match="every expectation is left out"):
        experiment = _load(tmp_path, text)
        with_facts(experiment, K61)


def test_check_says_what_the_expectations_follow():
    import subprocess
    import sys
    from pathlib import Path
    repo = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-m", "harness.cli", "--check", "experiments/syn_loss.yaml",
                           "experiments/fin_behind_data.yaml", "experiments/handshake.yaml"],
                          capture_output=True, text=True, cwd=repo, timeout=60)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].endswith("; expectations follow client net.ipv4.tcp_syn_linear_timeouts)")
    assert lines[1].endswith("; expectations follow the kernel)") and "follow" not in lines[2]


def test_an_expectation_for_another_kernel_is_checked_at_load(tmp_path):
    text = EXPERIMENT.replace("        - {when: kernel >= 6.12, from: client, flags: S}",
                              "        - {when: kernel < 6.2, from: client, flags: Q}")
    assert text != EXPERIMENT
    with pytest.raises(UserError) as info:
        _load(tmp_path, text)                 # this machine's kernel leaves it out; it is checked all the same
    assert "Q" in str(info.value) and info.value.line == next(
        i for i, row in enumerate(textwrap.dedent(text).splitlines(), 1) if "flags: Q" in row)


def test_an_unknown_host_is_named_at_its_line(tmp_path):
    text = EXPERIMENT.replace("- {when: kernel >= 6.12,", "- {when: nosuchhost.tcp_syn_retries > 1,")
    with pytest.raises(UserError) as info:
        _load(tmp_path, text)
    assert "nosuchhost is not a host of the topology (client, server)" in str(info.value)
    assert info.value.line == next(i for i, row in enumerate(textwrap.dedent(text).splitlines(), 1) if "nosuchhost" in row)
    text = EXPERIMENT.replace("default(client.tcp_syn_linear_timeouts, 0) > 0", "default(client.tcp_syn_linear_timeouts, nosuchhost.tcp_syn_retries) > 0")
    with pytest.raises(UserError, match="nosuchhost, which the topology does not have"):
        _load(tmp_path, text)                 # a fallback not taken here: named all the same
