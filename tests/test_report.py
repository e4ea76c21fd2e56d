"""The rendered report: loads in a real browser, holds every section, and shows the workflow's
numbers (checked against results/tables/estimands.csv)."""

from __future__ import annotations

import os
import re
import shutil

import pandas as pd
import pytest
from conftest import findings_of, run_snakemake

pytestmark = pytest.mark.slow

SECTIONS = [
    "summary",
    "findings",
    "data",
    "aim-a",
    "missing-data",
    "aim-b",
    "aim-c",
    "computation",
    "reproduce",
]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def test_report_is_self_contained_and_has_no_identifiers(completed_run):
    html = (completed_run / "results/report.html").read_text()
    assert "SYNTHETIC TWIN" in html
    assert not re.search(r"(src|href)=\"https?://", html)  # nothing fetched from the network
    patients = pd.read_csv(completed_run / "data/synthetic/patients.csv")
    text = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", html)  # images are not text
    assert not any(re.search(rf"\b{pid}\b", text) for pid in patients["patient_id"])
    for section in SECTIONS:
        assert f'id="{section}"' in html


def test_findings_estimates_equal_the_estimand_table(completed_run):
    html = (completed_run / "results/report.html").read_text()
    parsed = findings_of(html)
    assert parsed.findings_rows == 7
    table = pd.read_csv(
        completed_run / "results/tables/estimands.csv", dtype=str, keep_default_na=False
    )
    assert len(parsed.estimates) >= 7
    for estimate in parsed.estimates:
        match = table
        for column in ("estimand", "rater", "arm", "month", "term"):
            match = match[match[column] == estimate[f"data-{column}"]]
        assert len(match) == 1, estimate
        row = match.iloc[0]
        assert estimate["data-mean"] == f"{float(row['mean']):.2f}"
        assert estimate["data-ci-low"] == f"{float(row['ci_low']):.2f}"
        assert estimate["data-ci-high"] == f"{float(row['ci_high']):.2f}"


def test_findings_table_and_report_give_the_same_verdicts_and_firmness(completed_run):
    findings = pd.read_csv(
        completed_run / "results/tables/findings.csv", dtype=str, keep_default_na=False
    )
    assert list(findings.columns) == [
        "finding",
        "claim",
        "decisive_probability",
        "mcse",
        "verdict",
        "robust",
    ]
    assert findings["finding"].tolist() == [f"F{i}" for i in range(1, 8)]
    assert findings["claim"].tolist() == [
        "direction",
        "null",
        "difference",
        "null",
        "direction",
        "direction",
        "null",
    ]
    assert set(findings["robust"]) <= {"true", "false"}
    assert (findings["mcse"].astype(float) >= 0).all()
    html = (completed_run / "results/report.html").read_text()
    for row in findings.itertuples():
        tag = re.search(rf'<tr class="finding" data-key="{row.finding}"[^>]*>', html).group(0)
        assert f'data-robust="{row.robust}"' in tag
        verdict_cell = html[html.index(tag) :].split("</tr>")[0]
        assert f'class="verdict-{row.verdict}"' in verdict_cell
    rules = html[html.index('id="verdict-rules"') :].split("</ul>")[0]
    for claim in ("A direction", "A difference with no direction", "No effect"):
        assert claim in rules
    assert "97.5%" in rules  # the two-sided threshold at decision_prob 0.95


def test_prior_sensitivity_of_every_reported_model_is_shown(completed_run):
    from alliance.sensitivity import NOT_IDENTIFIED
    from alliance.settings import load_config

    html = (completed_run / "results/report.html").read_text()
    growth = load_config()["growth"]
    chosen = pd.read_csv(completed_run / "results/tables/growth_reported_models.csv")
    assert set(chosen["model"]) <= {growth["reported_model"], *growth["reported_alternatives"]}
    files = [  # the growth model reported for each rater, and every other model
        *(
            completed_run / f"results/growth/{row.rater}_{row.model}/prior_sensitivity.csv"
            for row in chosen.itertuples()
        ),
        *sorted((completed_run / "results/agreement").glob("*/prior_sensitivity.csv")),
        *sorted((completed_run / "results/association").glob("*/prior_sensitivity.csv")),
    ]
    assert len(files) == 2 + 2 + 4  # growth per rater, agreement, association
    tables = pd.concat([pd.read_csv(path) for path in files])
    # The reported quantities of each aim are all there (arm contrasts of both raters, the
    # agreement quantities per arm, each association coefficient of each rater).
    assert {"rater_correlation[digital]", "rater_bias[ptau]"} <= set(tables["quantity"])
    assert "directional_bias[ptau, 12]" in set(tables["quantity"])
    assert {"association[sus]", "association_within[sus]"} <= set(tables["quantity"])
    assert (
        tables["diagnosis"]
        .isin(
            [
                "not sensitive",
                "potential prior-data conflict",
                "potential strong prior / weak likelihood",
                NOT_IDENTIFIED,
            ]
        )
        .all()
    )
    section = html[html.index('id="sensitivity"') : html.index("Model sensitivity")]
    assert section.count("<tr") - 1 == len(tables)  # one header row
    flagged = int((~tables["diagnosis"].isin(["not sensitive", NOT_IDENTIFIED])).sum())
    flag = html[html.index('id="sensitivity-flag"') :].split("</p>")[0]
    expected = f"flagged for {flagged} of {len(tables)} reported" if flagged else "No reported"
    assert expected in flag


def test_quantities_the_data_do_not_identify_are_flagged(completed_run):
    """The summary names exactly the reported quantities (estimands, truth-and-bias cells,
    within/between coefficients) whose posterior contracted less than diagnostics.min_contraction
    from its prior and stayed near the prior's centre; every one of them has a prior to compare."""
    from alliance.posterior_summary import not_identified_rows
    from alliance.settings import load_config

    minimum = load_config()["diagnostics"]["min_contraction"]
    within_between = pd.read_csv(completed_run / "results/tables/association_within_between.csv")
    tables = [
        pd.read_csv(completed_run / "results/tables/estimands_detail.csv"),
        pd.read_csv(completed_run / "results/tables/truth_and_bias.csv"),
        within_between[within_between["model"] != "pooled"],  # incl. its no-communication row
    ]
    weak = []
    for table in tables:
        assert table[["prior_sd", "contraction"]].notna().all().all()
        weak.append(table[not_identified_rows(table, minimum)])
    weak = pd.concat(weak)
    html = (completed_run / "results/report.html").read_text()
    flag = html[html.index('id="identification-flag"') :].split("</p>")[0]
    if weak.empty:
        assert "Every reported quantity is informed by the data" in flag
    else:
        assert flag.count("posterior SD") == len(weak)
        for row in weak.itertuples():
            assert f"posterior SD {row.sd:.2f} against a prior SD of {row.prior_sd:.2f}" in flag


def test_report_opens_in_a_real_browser(completed_run, tmp_path):
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is required in CI (workflow/bin/setup-env --with-browser)")
        pytest.skip("chromium is not installed (workflow/bin/setup-env --with-browser)")
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    screenshot = completed_run / "results/report_screenshot.png"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        page = browser.new_page(viewport={"width": 1200, "height": 1600})
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
        page.on("requestfailed", lambda request: errors.append(f"failed: {request.url}"))
        page.goto((completed_run / "results/report.html").as_uri())
        page.wait_for_load_state("load")
        assert errors == []
        for section in SECTIONS:
            assert page.locator(f"section#{section}").count() == 1
        assert page.locator("#findings-table tr.finding").count() == 7
        images = page.locator("figure img")
        assert images.count() >= 15
        # Every figure decoded to a real picture.
        widths = page.eval_on_selector_all("figure img", "imgs => imgs.map(i => i.naturalWidth)")
        assert min(widths) > 100
        page.screenshot(path=str(screenshot), full_page=False)
        browser.close()
    assert screenshot.stat().st_size > 20_000


def test_snakemake_report_holds_the_flagged_figures(completed_run):
    result = run_snakemake(completed_run, "--report", "snakemake_report.html")
    assert result.returncode == 0, result.stderr[-3000:]
    html = (completed_run / "snakemake_report.html").read_text()
    for figure in (
        "trajectories.png",
        "growth_trajectories.png",
        "bland_altman.png",
        "association_forest.png",
        "estimands.csv",
    ):
        assert figure in html, figure


def test_summary_sentences_state_the_configured_interval_mass():
    """The clinician summary names the intervals' mass from the table (summary.ci_prob)."""
    from alliance.report import clinical_summary

    keys = [
        *(("arm_difference", rater, "", 12, "") for rater in ("patient", "therapist")),
        *(("change_difference", rater, "", "", "") for rater in ("patient", "therapist")),
        *(
            (name, "", arm, "", "")
            for name in ("rater_correlation", "rater_bias")
            for arm in ("digital", "ptau")
        ),
        ("association", "patient", "", "", "sus"),
        ("association", "patient", "", "", "vas_app"),
        ("association", "therapist", "", "", "vas_platform"),
    ]
    detail = pd.DataFrame(keys, columns=["estimand", "rater", "arm", "month", "term"]).assign(
        mean=-0.2, ci_low=-0.4, ci_high=-0.05, ci_prob=0.9, prob_positive=0.01
    )
    sentences = clinical_summary(detail, [3, 6, 12])
    with_intervals = [sentence for sentence in sentences if "interval" in sentence]
    assert len(with_intervals) == 9
    assert all("90% interval" in sentence for sentence in with_intervals)
    assert not any("95%" in sentence for sentence in sentences)


def test_fits_the_safety_net_sampled_again_are_named_in_the_summary(completed_run, tmp_path):
    workspace = tmp_path / "extended"
    shutil.copytree(completed_run, workspace, ignore=shutil.ignore_patterns(".snakemake"))
    html = (workspace / "results/report.html").read_text()
    assert 'id="extension-flag"' not in html  # the test config turns the safety net off
    path = workspace / "results/growth/patient_linear/diagnostics.csv"
    table = pd.read_csv(path)
    failed = int((~table["passed"]).sum())
    rows = table["quantity"].map({"draws_per_chain": 400, "extensions": 1})
    table.loc[rows.notna(), "value"] = rows[rows.notna()]
    assert rows.notna().sum() == 2
    table.to_csv(path, index=False)
    result = run_snakemake(workspace, "--forcerun", "render_report", "--", "results/report.html")
    assert result.returncode == 0, result.stderr[-3000:]
    html = (workspace / "results/report.html").read_text()
    flag = html[html.index('id="extension-flag"') :].split("</p>")[0]
    assert "1 fit did not pass every convergence check at first" in flag
    expected = "growth_patient_linear (from 200 to 400 draws kept per chain"
    assert expected + (f", still failing {failed} checks)" if failed else ")") in flag


def test_report_template_parses():
    """A syntax error in the template would otherwise surface only at the end of a full run."""
    import jinja2

    from alliance.settings import PROJECT_DIR

    template = PROJECT_DIR / "report" / "templates" / "report.html.j2"
    jinja2.Environment().parse(template.read_text())


def test_within_between_view_puts_the_three_coefficients_of_a_term_side_by_side():
    """One row per rater and term; only the pooled model's no-communication contrast is shown."""
    from alliance.report import within_between_view

    def row(model, estimand, term, mean):
        return {"model": model, "estimand": estimand, "rater": "patient", "term": term,
                "mean": mean, "ci_low": mean - 0.1, "ci_high": mean + 0.1}  # fmt: skip

    table = pd.DataFrame(
        [
            row("pooled", "association", "sus", 0.30),
            row("within_between", "association_between", "sus", 0.50),
            row("within_between", "association_within", "sus", 0.10),
            row("pooled", "association", "age", -0.20),
            row("within_between", "association_between", "age", -0.25),
            row("pooled", "no_communication", "no_communication", 0.40),
            row("within_between", "no_communication", "no_communication", 0.45),
        ]
    )
    view = within_between_view(table)
    assert list(view["term"]) == ["sus", "age", "no communication"]
    sus = view.iloc[0]
    assert sus["pooled (contract)"] == "+0.30 [+0.20, +0.40]"
    assert sus["between patients"] == "+0.50 [+0.40, +0.60]"
    assert sus["within patient"] == "+0.10 [+0.00, +0.20]"
    assert view.iloc[1]["within patient"] == ""  # age does not vary within a patient
    assert view.iloc[2]["pooled (contract)"] == "+0.40 [+0.30, +0.50]"


def test_validation_results_appear_in_the_report_once_they_exist(completed_run, tmp_path):
    """After a validation run writes its acceptance checks, the next run renders the report
    again (and only the report), with a section that shows them."""
    workspace = tmp_path / "validated"
    shutil.copytree(completed_run, workspace)
    html = (workspace / "results/report.html").read_text()
    assert 'id="validation-acceptance"' not in html
    acceptance = workspace / "results/validation/acceptance.csv"
    acceptance.parent.mkdir(parents=True)
    pd.DataFrame(
        [
            {
                "check": "coverage of aim (a) intervals, dropout at random",
                "result": 0.931,
                "target": "at least 90%",
                "passed": True,
                "evidence": "170 intervals in 10 scenarios",
            },
            {
                "check": "negative control dropout_not_at_random: aim (a) coverage falls",
                "result": 0.6,
                "target": "below the at-random scenarios",
                "passed": None,
                "evidence": "mean |bias| 0.210 WAI points",
            },
        ]
    ).to_csv(acceptance, index=False)
    dry = run_snakemake(workspace, "-n")
    assert dry.returncode == 0, dry.stderr[-2000:]
    assert "render_report" in dry.stdout and "fit_growth" not in dry.stdout
    result = run_snakemake(workspace)
    assert result.returncode == 0, result.stderr[-3000:]
    html = (workspace / "results/report.html").read_text()
    section = html[html.index('id="validation-acceptance"') :].split("</table>")[0]
    assert "coverage of aim (a) intervals, dropout at random" in section
    assert "93.1%" in section and "170 intervals in 10 scenarios" in section
    assert "<td>yes</td>" in section and "<td>shown</td>" in section
