"""The seed's claims: `claims:` in experiment files, the catalogue, and the claims report built
from recorded run folders (tests/fixtures/claims/: result.json files cut from real runs)."""
from __future__ import annotations

import functools
import json
import re
import shutil
from pathlib import Path

import pytest

from harness.claims import CLAIMS, CLAIM_NUMBERS, VERDICTS
from harness.errors import UserError
from harness.load import load_cells, load_experiment

REPO = Path(__file__).resolve().parents[2]
EXPERIMENTS = REPO / "experiments"
FIXTURES = REPO / "tests" / "fixtures" / "claims"


def _write(tmp_path: Path, claims_line: str) -> Path:
    (tmp_path / "t.yaml").write_text("name: t\nhosts: [client, server]\nswitches: [s1]\n"
                                     "links:\n  - {a: client, b: s1, delay: 25ms}\n  - {a: server, b: s1, delay: 25ms}\n")
    path = tmp_path / "e.yaml"
    path.write_text("name: e\n" + claims_line + "topology: t.yaml\nsteps:\n"
                    "  - {at: 0s, on: server, listen: 5001}\n  - {at: 0.5s, on: client, connect: server:5001}\n"
                    "expect:\n  client: {states: [SYN-SENT, ESTAB]}\n")
    return path


# --- the loader ---

@pytest.mark.parametrize("line, claims", [
    ("claims: [5, 6]\n", (5, 6)),
    ("claims: [13, 1]\n", (13, 1)),
    ("claims: []\n", ()),
    ("claims:\n  - 2\n  - 3\n", (2, 3)),
    ("", ()),
])
def test_loader_takes_claims(tmp_path, line, claims):
    assert load_experiment(_write(tmp_path, line)).claims == claims


@pytest.mark.parametrize("line, at, words", [
    ("claims: 5\n", 2, "claims has the wrong form"),
    ("claims: {5: x}\n", 2, "claims has the wrong form"),
    ("claims: [5, 14]\n", 2, "14 is not a claim number (1-13)"),
    ("claims: [0]\n", 2, "0 is not a claim number"),
    ("claims: [-3]\n", 2, "-3 is not a claim number"),
    ("claims: ['5']\n", 2, "'5' is not a claim number"),
    ("claims: [5.0]\n", 2, "5.0 is not a claim number"),
    ("claims: [true]\n", 2, "True is not a claim number"),
    ("claims:\n  - 5\n  - 6\n  - 5\n", 5, "5 is listed twice"),
    ("claims:\n  - 1\n  - 99\n", 4, "99 is not a claim number"),
])
def test_loader_refuses_bad_claims_with_line_and_fix(tmp_path, line, at, words):
    path = _write(tmp_path, line)
    with pytest.raises(UserError) as info:
        load_experiment(path)
    assert words in info.value.message
    assert info.value.line == at and info.value.file == str(path)
    assert "claims: [5, 6]" in info.value.fix


def test_matrix_cells_carry_the_claims():
    cells = load_cells(EXPERIMENTS / "fin_timeout_sweep.yaml")
    assert len(cells) == 3 and {c.experiment.claims for c in cells} == {(6, 13)}


# --- the catalogue and the shipped experiments ---

@functools.cache
def _shipped_claims() -> dict[str, tuple[int, ...]]:
    from harness.report.claims import shipped_experiments
    return {s.file: s.claims for s in shipped_experiments(EXPERIMENTS)}


def test_catalogue_is_the_seeds_thirteen():
    assert [c.number for c in CLAIMS] == list(CLAIM_NUMBERS) == list(range(1, 14))
    for c in CLAIMS:
        assert c.verdict in VERDICTS
        assert re.search(r"[\u4e00-\u9fff]", c.seed_zh), c.number      # quoted in the seed's Chinese
        assert c.seed_en and c.linux and "\n" not in c.linux


def test_catalogue_quotes_the_seed():
    """Each Chinese quote's pieces (split at ' ... ' and '; ') stand in the seed as written."""
    seed = REPO.parent / "shared" / "seed" / "000_67cc4729f50668e6.txt"
    if not seed.is_file():
        pytest.skip("the seed is not next to this checkout")
    text = seed.read_text()
    for c in CLAIMS:
        for piece in re.split(r" \.\.\. |; ", c.seed_zh):
            assert piece.strip("() ") in text, (c.number, piece)


def test_every_claim_has_an_experiment_or_says_why_not():
    covered = {n for claims in _shipped_claims().values() for n in claims}
    for c in CLAIMS:
        assert c.number in covered or c.no_experiment, f"claim {c.number}: no experiment and no reason"


def test_experiments_the_catalogue_cites_declare_the_claim():
    """`linux` names its evidence by file: each file must declare the claim (so its runs judge it)."""
    shipped = _shipped_claims()
    for c in CLAIMS:
        cited = re.findall(r"[\w/]+\.yaml", c.linux)
        assert cited, c.number
        for name in cited:
            assert c.number in shipped.get(name, ()), f"claim {c.number} cites {name}, which does not declare it"


def test_claims_experiments_lists_only_declaring_files():
    from harness.report.claims import claims_experiments, declared_claims
    files = claims_experiments(EXPERIMENTS)
    names = [str(p.relative_to(EXPERIMENTS)) for p in files]
    assert "handshake.yaml" in names and "packetdrill/shutdown_wr_close.yaml" in names
    assert "syn_loss.yaml" not in names and all(declared_claims(p) for p in files)
    assert declared_claims(EXPERIMENTS / "stale_syn.yaml") == (2, 5, 6)


# --- the report, from recorded run folders ---

K61, K612 = "6.1.0-57-amd64", "6.12.118+deb12-amd64"


@pytest.fixture
def batch(tmp_path) -> Path:
    """The recorded two-kernel batch, copied so a test may add a report.html or break a run."""
    copy = tmp_path / "results"
    shutil.copytree(FIXTURES / "batch", copy)
    return copy


def _judged(run_dirs: list[Path]):
    from harness.report.claims import collect_runs, judge_all, shipped_experiments
    shipped = shipped_experiments()
    runs = [r for r in collect_runs(run_dirs, shipped) if r.claims]
    return judge_all(runs, shipped), runs


def test_verdicts_per_kernel_from_recorded_runs(batch):
    judged, runs = _judged([batch])
    assert sorted({r.kernel for r in runs}) == [K61, K612] and len(runs) == 6
    # claim 5: stale_syn passed on both kernels -> the catalogue's verdict on both
    assert judged[(5, K61)].verdict == judged[(5, K612)].verdict == "nuanced"
    # claim 6 on 6.12: stale_syn and close_in_syn_sent passed -> refuted
    assert judged[(6, K612)].verdict == "refuted"
    assert {r.file for r in judged[(6, K612)].runs} == {"stale_syn.yaml", "close_in_syn_sent.yaml"}
    # claim 6 on 6.1: close_in_syn_sent FAILED there -> not shown, naming the run and what failed
    j = judged[(6, K61)]
    assert j.verdict == "not shown"
    assert "close_in_syn_sent.yaml (close_in_syn_sent/20261203-182111-25e4)" in j.why and "2 of 8" in j.why
    # claims 2-4: handshake passed on both
    assert judged[(3, K61)].verdict == judged[(4, K612)].verdict == "confirmed"
    # claim 9: its experiments were not run at all -> not shown, saying so
    assert judged[(9, K61)].verdict == "not shown" and "no run on this kernel of half_close.yaml" in judged[(9, K61)].why


def test_claims_come_from_result_json_first(batch):
    """When the runner records `claims`, those count (the file may have changed since the run)."""
    path = batch / "stale_syn" / "20261204-033856-a463" / f"kernel-{K612}" / "stale_syn" / "result.json"
    result = json.loads(path.read_text())
    path.write_text(json.dumps({**result, "claims": [9]}))
    judged, _ = _judged([batch])
    assert judged[(9, K612)].verdict == "nuanced" and judged[(9, K61)].verdict == "not shown"
    assert judged[(5, K612)].verdict == "not shown"            # this kernel's run no longer declares 5


def test_a_run_without_a_verdict_is_not_shown(batch):
    judged, _ = _judged([batch, FIXTURES / "no_verdict"])
    assert judged[(3, K61)].verdict == "not shown" and "no verdict" in judged[(3, K61)].why
    assert judged[(3, K612)].verdict == "confirmed"


def test_a_run_folder_without_result_json_is_not_shown(batch):
    broken = batch / "stale_syn" / "20261204-120000-dead" / f"kernel-{K612}" / "stale_syn"
    broken.mkdir(parents=True)
    (broken / "run.log").write_text("the VM died\n")
    judged, _ = _judged([batch, broken])
    j = judged[(5, K612)]
    assert j.verdict == "not shown" and "no result" in j.why and "20261204-120000-dead" in j.why
    assert judged[(5, K61)].verdict == "nuanced"


def test_no_experiment_yet():
    from harness.claims import claim
    from harness.report.claims import judge
    assert judge(claim(1), K61, [], []).verdict == "no experiment yet"


def _links(text: str) -> list[str]:
    return re.findall(r'\]\(([^)]+)\)', text) + re.findall(r'href="([^"]+)"', text)


def test_report_files_link_every_run_and_the_links_resolve(batch, tmp_path):
    from urllib.parse import unquote
    from harness.report.claims import write_claims_report
    page_run = batch / "handshake" / "20261204-033856-dbba" / f"kernel-{K61}" / "handshake"
    (page_run / "report.html").write_text("<!DOCTYPE html><title>run</title>")
    out = tmp_path / "out" / "claims"
    md, page = write_claims_report(out, [batch])
    assert (md, page) == (out / "claims.md", out / "claims.html")
    for path in (md, page):
        text = path.read_text()
        links = [link for link in _links(text) if not link.startswith("#")]
        assert len([link for link in links if link.endswith("result.json")]) >= 6, path.name
        for link in links:
            assert "://" not in link and (out / unquote(link)).resolve().is_file(), link
        assert sum(link.endswith("report.html") for link in links) >= 1      # written by the page: linked
    text = page.read_text()
    assert text.count('<section id="claim-') == 13 and "http" not in text.lower().replace("http-equiv", "")
    assert "client认为自己没有发送连接请求" in text and '<meta charset="utf-8">' in text
    assert re.search(r'<th>6\.1\.0-57-amd64</th><td><span class="v not-shown">not shown</span>', text)
    summary = md.read_text().split("\n## ")[0]
    assert "| 6 | The client, which sent no such request" in summary
    assert summary.count("**refuted**") == 1 and summary.count("**not shown**") >= 2


def test_report_without_runs_still_lists_the_claims(tmp_path):
    from harness.report.claims import write_claims_report
    md, page = write_claims_report(tmp_path, [])
    assert md.read_text().count("## Claim ") == 13 and "no runs given" in md.read_text()
    assert page.read_text().count("No runs given.") == 13


@pytest.mark.parametrize("claims, ok", [([5, 6], True), ([], True), ([14], False), ([0], False), (["5"], False),
                                        ([5, 5], False), (5, False)])
def test_schema_says_what_the_loader_says(claims, ok):
    """Editors see the same rule: the generated schema takes claims the loader takes, and refuses these."""
    import jsonschema
    schema = json.loads((REPO / "harness" / "schema" / "experiment.schema.json").read_text())
    doc = {"name": "e", "topology": "two_hosts", "steps": [], "expect": {}, "claims": claims}
    errors = list(jsonschema.Draft202012Validator(schema).iter_errors(doc))
    assert (not errors) == ok, [e.message for e in errors]


def test_claims_asked_for_by_number_choose_the_files_and_the_reports_rows(batch, tmp_path):
    """`run-experiment claims 10`: only the files that declare claim 10 run, and the report lists
    claim 10 alone (the others were not asked about, so "not shown" would be noise)."""
    from harness.cli import _claim_numbers
    from harness.errors import UserError
    from harness.report.claims import claims_experiments, write_claims_report
    assert _claim_numbers([]) is None and _claim_numbers(["10", "5"]) == {5, 10}
    for bad in (["14"], ["0"], ["x"]):
        with pytest.raises(UserError, match="not one of the seed's claims"):
            _claim_numbers(bad)
    files = claims_experiments(EXPERIMENTS, {10})
    assert sorted(p.name for p in files) == ["half_close.yaml", "teardown.yaml"]
    md, page = write_claims_report(tmp_path / "out", [batch], {5})
    text = md.read_text()
    assert "## Claim 5" in text and "## Claim 6" not in text and "| 6 |" not in text
    assert 'id="claim-5"' in page.read_text() and 'id="claim-6"' not in page.read_text()
