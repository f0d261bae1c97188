"""`run-experiment claims N`: the experiments that test a claim of the seed, run on two kernels,
judged in claims.md/claims.html with links to each run's report.html."""
import os
import re
from urllib.parse import unquote

import pytest

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(os.geteuid() != 0, reason="building a lab needs root")]


def test_claim_10_is_confirmed_on_two_kernels_with_links_to_the_ladders(cli, tmp_path):
    from harness.plan.kernels import kernels_with_netem, release_of
    kernels = kernels_with_netem()
    if len(kernels) < 2:
        pytest.skip("one kernel with netem installed; judging on two needs two (scripts/setup --tests installs 6.12)")
    old, new = kernels[-1], kernels[0]
    code, out, err = cli(["claims", "10", "--jobs", "2", "--kernel", str(old), "--kernel", str(new)], tmp_path).finish()
    print(out[-20000:], err)
    assert code == 0
    assert "the seed's claims 10: tested by 2 experiment(s): half_close, teardown" in out
    (md,) = tmp_path.glob("claims/*/claims.md")
    text = md.read_text()
    rows = [line for line in text.splitlines() if re.match(r"\| \d+ \|", line)]
    assert len(rows) == 1 and rows[0].startswith("| 10 |")            # only the claim asked for
    assert rows[0].count("**confirmed**") == 2
    assert f"| {release_of(old)} | {release_of(new)} |" in text or f"| {release_of(new)} | {release_of(old)} |" in text
    links = re.findall(r"\[report\]\(([^)]+)\)", text)
    assert len(links) == 4                                           # two experiments on two kernels
    for link in links:
        assert (md.parent / unquote(link)).resolve().is_file(), link      # links are URLs: + is %2B
    html = (md.parent / "claims.html").read_text()
    assert "http://" not in html and "https://" not in html
